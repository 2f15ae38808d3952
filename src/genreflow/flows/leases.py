"""One writing run at a time on a store: the flows take its lease, and say so when they replace a dead run's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import get_run_logger

from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.store.lease import StoreLease, acquire_lease


@contextlib.contextmanager
def holding_lease(layout: StoreLayout, holder: str, *, wait_s: float) -> Iterator[StoreLease]:
    """The store's lease for the length of the block (waiting up to ``wait_s`` for a live holder)."""
    with acquire_lease(layout, holder=holder, wait_s=wait_s) as lease:
        if lease.took_over is not None:
            get_run_logger().warning("took over the store lease of a run that died: %s", lease.took_over.describe())
        yield lease
