"""What every feature set is: a frozen, hashable config plus one pure ``compute``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..audio import fit_length
from ..errors import ParameterError


@dataclass(frozen=True)
class FeatureSet(ABC):
    """A named, versioned time–frequency representation.

    Subclasses add their parameters as dataclass fields and implement :meth:`compute`. Any change
    of a parameter changes :attr:`config_hash`, so stored arrays always trace to exact settings.
    """

    kind: ClassVar[str]
    name: str
    version: int
    sample_rate: int
    hop_length: int

    @property
    @abstractmethod
    def n_bins(self) -> int:
        """Rows of the output (frequency bins)."""

    @abstractmethod
    def compute(self, samples: np.ndarray, *, sr: int) -> np.ndarray:
        """Features of a mono signal.

        Parameters
        ----------
        samples : np.ndarray, float32 [shape=(n,)]
            Audio at ``sr``, which must equal :attr:`sample_rate`.
        sr : int

        Returns
        -------
        np.ndarray, float32 [shape=(n_bins, n_frames(n))]
        """

    def compute_window(self, samples: np.ndarray, *, sr: int, size: int) -> np.ndarray:
        """Features of ``samples`` zero-padded (or cut) to ``size`` samples: a stored window.

        The same values as ``compute(fit_length(samples, size))``; sets that know what their frames
        of padding hold override it to skip computing them, so a short clip costs what it holds.
        """
        return self.compute(fit_length(samples, size=size), sr=sr)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` (centred frames, one every ``hop_length``)."""
        return 1 + n_samples // self.hop_length

    def config(self) -> dict[str, Any]:
        """Every parameter, tagged with the kind: what goes into the store's attrs."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @property
    def config_hash(self) -> str:
        """A short stable digest of :meth:`config`."""
        canonical = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def _check_input(self, samples: np.ndarray, sr: int) -> None:
        if sr != self.sample_rate:
            raise ParameterError(f"{self.name} expects audio at {self.sample_rate} Hz, got sr={sr}")
        if samples.ndim != 1 or samples.dtype != np.float32:
            raise ParameterError(
                f"{self.name} expects mono float32 samples, got dtype={samples.dtype} ndim={samples.ndim}"
            )
