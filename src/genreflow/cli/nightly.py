"""``genreflow nightly SOURCE... --store ROOT``: ingest what is new, then score it with the production model."""

from __future__ import annotations

import argparse

from genreflow.cli.common import (
    add_allow_empty_source,
    add_command,
    add_json,
    add_runtime,
    add_threshold,
    add_wait,
    given,
    model_spec,
    option,
    report,
    settings,
)
from genreflow.pipeline.scoring.config import DEFAULT_NIGHTLY_MODELS


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "nightly", help="ingest new, changed and vanished files, then score what is new",
                         handler=handle)  # fmt: skip
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="folders or s3:// prefixes holding the audio")
    option(parser, "--model", dest="models", action="append", type=model_spec, metavar="NAME[@VERSION]",
           help="a model to score with (repeat for several; zero-shot taggers too)",
           default_from=lambda: DEFAULT_NIGHTLY_MODELS)  # fmt: skip
    add_threshold(parser)
    add_allow_empty_source(parser)
    add_json(parser)
    add_wait(parser)
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import describe_nightly, nightly_exit_code
    from genreflow.flows.runtime import run_nightly

    summary = run_nightly(
        settings(args, store_required=True),
        sources=args.sources,
        allow_empty_source=args.allow_empty_source,
        **given(args, "models", "threshold", "wait_s"),
    )
    return report(summary, describe_nightly, nightly_exit_code, as_json=args.json)
