"""Feature sets by name. One decode of a track feeds every set requested."""

from __future__ import annotations

from ..errors import ParameterError
from .base import FeatureSet
from .mel import MEL128, MUSICNN96, STFT512, LinearSpectrogram, MelSpectrogram
from .wavelet import WAVELET, MorletScalogram

FEATURE_SETS: dict[str, FeatureSet] = {fs.name: fs for fs in (MEL128, MUSICNN96, WAVELET, STFT512)}


def get_feature_set(name: str) -> FeatureSet:
    """The registered feature set called ``name``; :class:`ParameterError` lists the known ones."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ParameterError(f"unknown feature set {name!r}; known: {', '.join(FEATURE_SETS)}") from None


def parse_feature_sets(names: str | list[str] | tuple[str, ...]) -> tuple[FeatureSet, ...]:
    """Feature sets from ``"mel128,wavelet"`` or a list of names, in order, without repeats."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ParameterError("at least one feature set is needed")
    return tuple(get_feature_set(n) for n in dict.fromkeys(names))


__all__ = [
    "FEATURE_SETS",
    "MEL128",
    "MUSICNN96",
    "STFT512",
    "WAVELET",
    "FeatureSet",
    "LinearSpectrogram",
    "MelSpectrogram",
    "MorletScalogram",
    "get_feature_set",
    "parse_feature_sets",
]
