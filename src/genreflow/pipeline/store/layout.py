"""Where each part of a store lives, so no module joins store paths by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..uri import join


@dataclass(frozen=True)
class StoreLayout:
    """Locations inside one store root, plus the options to reach it."""

    root: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def manifest(self) -> str:
        return join(self.root, "manifest")

    @property
    def features(self) -> str:
        return join(self.root, "features.zarr")

    @property
    def scores(self) -> str:
        """Where scores go unless a run names another root (``genreflow score --out``)."""
        return join(self.root, "scores")

    @property
    def embeddings(self) -> str:
        """Per-track embeddings and their nearest-neighbour index, one folder per model version."""
        return join(self.root, "embeddings")

    @property
    def runs(self) -> str:
        return join(self.root, "runs")

    @property
    def lease(self) -> str:
        """The lock of the one run writing the store now (:mod:`genreflow.pipeline.store.lease`)."""
        return join(self.root, "lease.json")

    @property
    def models(self) -> str:
        """The model registry: ``<name>/<version>/`` folders and a ``<name>/production`` pointer."""
        return join(self.root, "models")

    def model_dir(self, name: str, version: str | None = None) -> str:
        """A model name's folder, or one of its versions' folders."""
        return join(self.models, name, version) if version else join(self.models, name)

    def manifest_part(self, run_id: str) -> str:
        return join(self.manifest, f"part-{run_id}.parquet")

    def run_dir(self, run_id: str) -> str:
        return join(self.runs, run_id)

    def allocation(self, run_id: str) -> str:
        """The rows a run's shards were allocated, written before they run (see ``record_allocation``)."""
        return join(self.run_dir(run_id), "allocation.json")

    def receipt(self, run_id: str, shard_index: int) -> str:
        return join(self.run_dir(run_id), f"shard-{shard_index:06d}.parquet")
