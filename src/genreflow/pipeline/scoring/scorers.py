"""What scores tracks: a registered classifier, or one of the pretrained musicnn taggers zero-shot.

:func:`describe_model` answers what a model reads and which labels it gives without importing
TensorFlow (the flow plans with it); :func:`load_scorer` adds the Keras model (the workers use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import registry
from ..errors import ParameterError
from ..models import musicnn
from ..names import split_spec
from ..patches import model_inputs
from ..registry import ModelRef
from ..store import StoreLayout
from .config import OUTPUTS

ZERO_SHOT = {f"{name}-tags": name for name in musicnn.PRETRAINED}  # musicnn-msd-tags, ...
ZERO_SHOT_VERSION = "musicnn-0.1.0"  # the release whose checkpoints the taggers load


@dataclass(frozen=True)
class ModelInfo:
    """A model version as scoring sees it.

    Attributes
    ----------
    labels : tuple of str
        One per output column, in output order.
    inputs, patch_frames : tuple
        The feature sets it reads and the frames of one patch of each (3 s).
    kind : str
        ``"classes"`` (probabilities over the labels, summing to one) or ``"tags"`` (an independent
        probability per tag).
    patch_hop : float
        From the store, a track's patches start this fraction of a patch apart: the value the model
        was evaluated with (cards from before the setting: 1, non-overlapping).
    """

    ref: ModelRef
    labels: tuple[str, ...]
    inputs: tuple[str, ...]
    patch_frames: tuple[int, ...]
    kind: str
    patch_hop: float = 1.0

    @property
    def feature_set(self) -> str:
        return "+".join(self.inputs)


@dataclass(frozen=True)
class Scorer:
    """A loaded model: patches in, per-patch probabilities (or embeddings) out."""

    info: ModelInfo
    model: Any

    @property
    def width(self) -> int:
        """Values per patch: the labels, or the embedding's size."""
        return int(self.model.output.shape[-1])

    def predict(self, patches: list[np.ndarray]) -> np.ndarray:
        """Outputs of one batch, float32 [shape=(n_patches, width)]."""
        return np.asarray(self.model.predict_on_batch(model_inputs(patches)), dtype=np.float32)


def resolve_model(layout: StoreLayout, spec: str) -> ModelRef:
    """``NAME[@VERSION]`` → a version: a zero-shot tagger, or a registered model (its production
    version when promoted, else its newest; see :func:`~genreflow.pipeline.registry.resolve`)."""
    name, version = split_spec(spec)
    if name in ZERO_SHOT:
        if version not in ("", ZERO_SHOT_VERSION, registry.PRODUCTION):
            raise ParameterError(f"{name} has one version, {ZERO_SHOT_VERSION}; got {version!r}")
        return ModelRef(name, ZERO_SHOT_VERSION)
    return registry.resolve(layout, spec)


def describe_model(layout: StoreLayout, ref: ModelRef) -> ModelInfo:
    """Labels and inputs of ``ref``, from the registry's card and labels (no TensorFlow)."""
    if ref.name in ZERO_SHOT:
        tagger = musicnn.PRETRAINED[ZERO_SHOT[ref.name]]
        return ModelInfo(ref, tagger.tags, ("musicnn96",), (musicnn.PATCH_FRAMES,), "tags")
    card = registry.read_card(layout, ref)
    data, hop = card["data"], float(card.get("config", {}).get("patch_hop", 1.0))
    labels = tuple(registry.read_labels(layout, ref))
    return ModelInfo(ref, labels, tuple(data["feature_sets"]), tuple(data["patch_frames"]), "classes", hop)


def load_scorer(layout: StoreLayout, ref: ModelRef, *, output: str = OUTPUTS[0]) -> Scorer:
    """The Keras model of ``ref`` (registered models load in Keras safe mode), giving ``output``.

    ``embedding`` cuts the model at the layer its head reads: every architecture names it
    ``embedding`` (the penultimate layer; a linear probe's frozen tagger features). A zero-shot
    tagger gives its own penultimate layer (musicnn 200 values, vgg 256).
    """
    if output not in OUTPUTS:
        raise ParameterError(f"output must be one of {OUTPUTS}, got {output!r}")
    info = describe_model(layout, ref)
    if ref.name in ZERO_SHOT:
        if output == "probabilities":
            return Scorer(info, musicnn.tags_model(ZERO_SHOT[ref.name]))
        import keras

        patches, frames_first = musicnn.store_patches()
        embedding = musicnn.build_tagger(ZERO_SHOT[ref.name])(frames_first)["embedding"]
        return Scorer(info, keras.Model(patches, embedding, name=f"{ref.name}-embedding"))
    model = registry.load_model(layout, ref)
    if output == "embedding":
        import keras

        model = keras.Model(model.input, model.get_layer("embedding").output, name=f"{ref.name}-embedding")
    return Scorer(info, model)
