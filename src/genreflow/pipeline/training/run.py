"""One training run end to end: data → fit → a single test evaluation → a registered model version."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from ..models.architectures import backbone_candidates
from ..patches import PatchReader
from ..registry import ModelRef, load_keras_file, register
from ..store import StoreLayout
from ..store.lease import acquire_lease
from .config import TrainConfig
from .data import labelled_tracks
from .evaluate import PROBABILITIES, metrics, track_outputs, write_report
from .fit import fit_backbone
from .probe import ProbeFeatures

LIBRARIES = ("genreflow", "keras", "tensorflow", "tensorflow-cpu", "numpy", "scikit-learn")


@dataclass(frozen=True)
class TrainResult:
    """A registered model version: its name, version, where it lives, the device it trained on and its
    card (the JSON document written beside the model: data, config, selection, metrics)."""

    name: str
    version: str
    path: str
    device: str
    card: dict[str, Any]

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def state_dir(home: Path, layout: StoreLayout, arch_name: str, model_name: str, config: TrainConfig) -> Path:
    """Where a run keeps its resumable state: the same command after a crash finds the same folder."""
    key = json.dumps([layout.root, arch_name, model_name, asdict(config)], sort_keys=True, default=str)
    return home / "training" / hashlib.sha256(key.encode()).hexdigest()[:16]


def train_and_register(
    layout: StoreLayout,
    arch_name: str,
    *,
    model_name: str,
    config: TrainConfig,
    state: Path,
    device: str,
    selection: dict[str, Any] | None = None,
    wait_s: float = 0.0,
    worker: dict[str, Any] | None = None,
    features: ProbeFeatures | None = None,
) -> TrainResult:
    """Train ``arch_name``, evaluate it once on the test split, register it under the store's lease
    (waiting up to ``wait_s`` for another run's; if it is still held, the run's resumable state is
    kept, so the same command registers without training again from scratch).

    ``arch_name`` ``auto`` fits every candidate probe and registers the one of lowest inner
    cross-validated log loss (``features``: the run's cache of their tagger features, shared with
    its cross-validation). ``selection`` (grid scores on validation, cross-validation figures) and
    where it ran (the host, and the Dask ``worker`` with its resources when one ran it) are recorded
    in the card.
    """
    candidates = backbone_candidates(arch_name)
    data = labelled_tracks(layout, candidates[0].inputs, seed=config.seed, needed_by=arch_name)
    # auto's candidates all read the same musicnn96 patches
    reader = PatchReader(layout, candidates[0], hop=config.patch_hop)
    state.mkdir(parents=True, exist_ok=True)
    arch, result = fit_backbone(candidates, reader, data, config, state, features=features)

    test = data.split("test")
    labels = {name: i for i, name in enumerate(data.classes)}
    y_true = test["label"].map(labels).to_numpy()
    test_outputs = track_outputs(result.model, reader, test, [PROBABILITIES, "embedding"], batch_size=config.batch_size)
    probabilities = test_outputs[PROBABILITIES]
    card: dict[str, Any] = {
        "architecture": arch.name,
        "backbone_requested": arch_name,  # `auto`: the card's fit.candidates say why arch.name won
        "created_at": datetime.now(UTC).isoformat(),
        "data": {
            "store": layout.root,
            "feature_sets": list(arch.inputs),
            "patch_frames": list(arch.patch_frames),
            **data.summary(),  # split_source(s), counts, excluded_by_split, classes
        },
        "config": asdict(config),
        "seed": config.seed,
        "pretrained": arch.pretrained,
        "device": device,
        "ran_on": {"host": platform.node(), "dask_worker": worker},  # worker: address, name, resources (GPU)
        "fit": result.details,
        "selection": selection or {},
        "timings": {"fit_s": round(result.seconds, 2)},
        "libraries": {name: v for name in LIBRARIES if (v := _version(name))} | {"python": platform.python_version()},
        "metrics": metrics(y_true, probabilities, data.classes),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="genreflow-register-") as tmp:
        staged = Path(tmp)
        result.model.save(staged / "model.keras")
        load_keras_file(staged / "model.keras")  # refuse to register what cannot load
        (staged / "labels.json").write_text(json.dumps(list(data.classes)))
        write_report(
            staged / "report",
            title=f"{model_name}: {arch.name}",
            card=card,
            classes=data.classes,
            tracks=test,
            y_true=y_true,
            probabilities=probabilities,
            history=result.history,
            embeddings=test_outputs["embedding"],
        )
        with acquire_lease(layout, holder=f"train {model_name}", wait_s=wait_s):
            ref = register(layout, model_name, staged, card)
    shutil.rmtree(state, ignore_errors=True)
    return TrainResult(ref.name, ref.version, layout.model_dir(ref.name, ref.version), device, card)


def _version(distribution: str) -> str | None:
    """The installed version, or None (tensorflow and tensorflow-cpu are alternatives)."""
    try:
        return package_version(distribution)
    except PackageNotFoundError:
        return None
