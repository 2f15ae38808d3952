"""What every command shares: its options (declared once), settings, argument types, the help that
shows each default from the code that owns it, and the one error handler.

Nothing here imports numpy, Prefect or TensorFlow: ``genreflow --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from genreflow.console import EXIT_INTERRUPTED, EXIT_LEASE_HELD, EXIT_STORAGE, EXIT_TRACKS_FAILED, EXIT_USAGE
from genreflow.infra.settings import Settings
from genreflow.pipeline.errors import GenreflowError, LeaseHeld, ParameterError
from genreflow.pipeline.names import check_name, split_spec

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line naming the argument, then where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class OwnedDefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default X)`` to an option's help, read from the dataclass or function that owns the
    value (an option's ``default_from``), only when help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        owner = getattr(action, "default_from", None)
        value = owner() if owner else None
        if value is None or value is False:
            return text
        shown = ",".join(map(str, value)) if isinstance(value, tuple | list) else value
        return f"{text} (default {shown})"


def add_command(sub: Any, name: str, *, help: str, handler: Handler) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help, formatter_class=OwnedDefaultsFormatter)
    parser.set_defaults(handler=handler)
    return parser


def option(
    parser: argparse.ArgumentParser, *flags: str, default_from: Callable[[], Any] | None = None, **kwargs: Any
) -> argparse.Action:
    """An option whose default is left to its owner: ``None`` when not given (see :func:`given`)."""
    action = parser.add_argument(*flags, default=None, **kwargs)
    action.default_from = default_from  # type: ignore[attr-defined]
    return action


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options the user gave, as keyword arguments; the owner of each default decides the rest."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def add_store(parser: argparse.ArgumentParser, *, default: str = "") -> None:
    """``--store``: required unless ``default`` says where it goes instead."""
    where = f"; default {default}" if default else "; required"
    parser.add_argument("--store", default=None, help=f"store root, a folder or s3:// (env GENREFLOW_STORE){where}")


def add_s3(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 API endpoint (env GENREFLOW_S3_ENDPOINT_URL)")


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="show Prefect, Dask and library logs, and tracebacks")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")


def add_allow_empty_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-empty-source",
        action="store_true",
        help="a source that lists no files retires the store's files from it (else refused: it looks like an outage)",
    )


def add_model(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--model NAME[@VERSION]``, one model, ``score``'s default."""
    from genreflow.pipeline.scoring.config import DEFAULT_MODEL

    option(parser, "--model", type=model_spec, metavar="NAME[@VERSION]", help=help, default_from=lambda: DEFAULT_MODEL)


def add_threshold(parser: argparse.ArgumentParser) -> None:
    from genreflow.pipeline.scoring.config import DEFAULT_THRESHOLD

    option(parser, "--threshold", type=probability, help="count tracks whose top probability is lower",
           default_from=lambda: DEFAULT_THRESHOLD)  # fmt: skip


def report(summary: Any, describe: Callable[[Any], str], exit_code: Callable[[Any], int], *, as_json: bool) -> int:
    """Print a run's summary, as text or as JSON (``--json``), and return its exit code."""
    print(json.dumps(summary.to_dict(), indent=2, default=str) if as_json else describe(summary))
    return exit_code(summary)


def add_wait(parser: argparse.ArgumentParser) -> None:
    option(parser, "--wait", dest="wait_s", type=non_negative_float, metavar="S",
           help="wait up to S seconds while another run holds the store's lease (else exit 3 at once)",
           default_from=lambda: 0)  # fmt: skip


def add_runtime(parser: argparse.ArgumentParser, *, store_default: str | None = "") -> None:
    """Where a flow runs: the store (``store_default=None``: the command makes its own, so it takes
    no ``--store``), local workers or a Dask cluster, S3, verbosity."""
    from genreflow.infra.settings import CLUSTERS, ENV

    if store_default is not None:
        add_store(parser, default=store_default)
    option(
        parser,
        "--workers",
        type=positive_int,
        help="local Dask worker processes (env GENREFLOW_WORKERS)",
        default_from=lambda: Settings.workers,
    )
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler (env GENREFLOW_DASK_ADDRESS)")
    for name, what in (
        ("dask_tls_ca_file", "the CA that signed the Dask cluster's certificates"),
        ("dask_tls_cert", "this process's certificate (PEM; may hold its key too)"),
        ("dask_tls_key", "the certificate's private key (PEM)"),
    ):
        text = f"Dask TLS (a tls:// --dask-address, or --cluster slurm): {what} (env {ENV[name]})"
        parser.add_argument("--" + name.replace("_", "-"), default=None, metavar="PATH", help=text)
    option(
        parser,
        "--cluster",
        choices=CLUSTERS,
        help="where Dask workers run: local processes, SLURM jobs (extra genreflow[slurm]) or Kubernetes pods "
        "(extra genreflow[kubernetes]) (env GENREFLOW_CLUSTER)",
        default_from=lambda: Settings.cluster,
    )
    parser.add_argument(
        "--cluster-config",
        default=None,
        metavar="PATH",
        help="TOML or YAML file: the slurm or kubernetes cluster and its workers' environment "
        "(env GENREFLOW_CLUSTER_CONFIG; format in genreflow/infra/clusters.py)",
    )
    add_s3(parser)
    add_verbose(parser)


def settings(args: argparse.Namespace, *, store_required: bool) -> Settings:
    """Flags over environment over defaults; a missing store is one line, before any work."""
    resolved = Settings.resolve(
        store=getattr(args, "store", None),
        workers=getattr(args, "workers", None),
        dask_address=getattr(args, "dask_address", None),
        s3_endpoint_url=getattr(args, "s3_endpoint_url", None),
        verbose=getattr(args, "verbose", False),
        cluster=getattr(args, "cluster", None),
        cluster_config=getattr(args, "cluster_config", None),
        dask_tls_ca_file=getattr(args, "dask_tls_ca_file", None),
        dask_tls_cert=getattr(args, "dask_tls_cert", None),
        dask_tls_key=getattr(args, "dask_tls_key", None),
    )
    if store_required and not resolved.store:
        raise ParameterError("--store (or GENREFLOW_STORE) is required")
    if resolved.cluster != "local" or resolved.dask_address:
        from genreflow.infra.clusters import runner_kwargs

        # A missing extra, a bad --cluster-config or TLS file is one line, before any work.
        runner_kwargs(resolved)
    return resolved


def run(args: argparse.Namespace) -> int:
    """Call the command's handler; every error becomes one line on stderr (the traceback with ``--verbose``).

    Exit codes: a :class:`GenreflowError` (bad argument, source, store, metadata) is 2, another run
    holding the store's lease 3, storage that cannot be read or written (S3 down after its retries, a
    full disk, a read-only filesystem) 4; anything else that stops a run (a bug) is 1; Ctrl-C is 130.
    """
    verbose = getattr(args, "verbose", False)
    try:
        return int(args.handler(args))
    except LeaseHeld as error:
        return _fail(str(error), EXIT_LEASE_HELD, verbose=verbose)
    except GenreflowError as error:
        return _fail(str(error), EXIT_USAGE, verbose=verbose)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, verbose=verbose)
    except Exception as error:
        if not _is_storage_fault(error):
            hint = "" if verbose else " (run again with --verbose for the traceback)"
            return _fail(f"{type(error).__name__}: {error}{hint}", EXIT_TRACKS_FAILED, verbose=verbose)
        return _fail(storage_fault(error, store=getattr(args, "store", None)), EXIT_STORAGE, verbose=verbose)


def _fail(message: str, code: int, *, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"genreflow: error: {message}", file=sys.stderr)
    return code


def _is_storage_fault(error: BaseException) -> bool:
    """An OS-level I/O failure (s3fs turns S3's error answers into these too), or botocore's own for
    an S3 endpoint that never answered (refused, timed out, closed); botocore is only asked if loaded."""
    botocore = sys.modules.get("botocore.exceptions")
    return isinstance(error, OSError) or (botocore is not None and isinstance(error, botocore.BotoCoreError))


def storage_fault(error: BaseException, *, store: str | None) -> str:
    """One line for storage that failed a run: where (the file the OS names, else the store) and why
    (for S3, the status and code it answered after its retries); what was committed stays readable."""
    filename = getattr(error, "filename", None)
    where = str(filename) if filename else f"store {store}" if store else "storage"
    reason = getattr(error, "strerror", None) or str(error)
    response = getattr(error.__cause__, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = f"S3 answered {status} {response['Error'].get('Code')} after its retries ({reason.rstrip('.')})"
    elif not isinstance(error, OSError):
        reason = f"S3 did not answer after its retries ({error})"
    return f"{where}: {reason}; the store keeps what was committed: run again once it is fixed"


def positive_int(text: str) -> int:
    return _checked(int, text, lambda v: v >= 1, "an integer of at least 1")


def non_negative_int(text: str) -> int:
    return _checked(int, text, lambda v: v >= 0, "an integer of at least 0")


def positive_float(text: str) -> float:
    return _checked(float, text, lambda v: v > 0, "a number greater than 0")


def non_negative_float(text: str) -> float:
    return _checked(float, text, lambda v: v >= 0, "a number of at least 0")


def probability(text: str) -> float:
    return _checked(float, text, lambda v: 0 <= v <= 1, "a probability between 0 and 1")


def model_name(text: str) -> str:
    """A registry name (it becomes a folder): the pattern of :mod:`genreflow.pipeline.names`."""
    return _as_argument_error(check_name, text)


def model_spec(text: str) -> str:
    """``NAME[@VERSION]``, both parts safe names."""
    _as_argument_error(split_spec, text)
    return text


def _as_argument_error(check: Callable[[str], Any], text: str) -> Any:
    try:
        return check(text)
    except ParameterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def names(text: str) -> list[str]:
    """A comma-separated list (``mel128,musicnn96``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return items


def _checked(cast: Callable[[str], Any], text: str, valid: Callable[[Any], bool], expected: str) -> Any:
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value != value or not valid(value):  # NaN is never in range
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
