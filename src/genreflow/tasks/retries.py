"""Which failures a task retries: what may pass on a second try (an S3 hiccup, a lost worker, a timeout),
never a :class:`~genreflow.pipeline.errors.GenreflowError` (bad metadata, a store used against its
rules: the same inputs fail the same way, and a retry only delays the one line the user needs)."""

from __future__ import annotations

from typing import Any

from genreflow.pipeline.errors import GenreflowError


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: True when the failure in ``state`` is worth another try."""
    return not isinstance(getattr(state, "data", None), GenreflowError)
