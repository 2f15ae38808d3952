"""Which failures a task retries: what may pass on a second try (an S3 hiccup, a lost worker, a timeout),
never a :class:`~genreflow.pipeline.errors.GenreflowError` (bad metadata, a store used against its
rules: the same inputs fail the same way, and a retry only delays the one line the user needs), nor a
full disk, a read-only filesystem or a refused permission: those wait for a person, not for seconds."""

from __future__ import annotations

import errno
from typing import Any

from genreflow.pipeline.errors import GenreflowError

# OS errors that no retry a few seconds later can pass.
LASTING_OS_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: True when the failure in ``state`` is worth another try."""
    error = getattr(state, "data", None)
    if isinstance(error, OSError) and error.errno in LASTING_OS_ERRORS:
        return False
    return not isinstance(error, GenreflowError)
