"""The exceptions genreflow raises: callers catch :class:`GenreflowError` or one of its kinds."""


class GenreflowError(Exception):
    """Root of every error genreflow raises on purpose."""


class ParameterError(GenreflowError, ValueError):
    """A malformed argument: wrong shape, dtype, range or an unknown name."""


class DecodeError(GenreflowError):
    """A file that cannot become usable audio (corrupt, truncated, silent, too short, ...)."""


class CatalogueError(GenreflowError):
    """Dataset metadata that is missing or malformed; the message names the file and the fault."""


class StoreError(GenreflowError):
    """The feature store or manifest is unreachable, inconsistent or used against its rules."""


class LeaseHeld(StoreError):
    """Another run holds the store's lease (one writing run at a time); the message names it.

    ``holder`` is that run's :class:`~genreflow.pipeline.store.lease.LeaseInfo` (``None`` if unknown).
    """

    def __init__(self, message: str, holder: object = None) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self):  # keep ``holder`` through pickling (exceptions pickle only ``args``)
        return type(self), (str(self), self.holder)
