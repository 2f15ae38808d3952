"""``genreflow embed --store ROOT``: one L2-normalised embedding per track, and the index that searches them."""

from __future__ import annotations

import argparse

from genreflow.cli.common import (
    add_command,
    add_json,
    add_model,
    add_runtime,
    add_wait,
    given,
    non_negative_int,
    option,
    positive_int,
    report,
    settings,
)
from genreflow.cli.score import MODEL_HELP
from genreflow.pipeline.embeddings.config import EXACT_BELOW
from genreflow.pipeline.scoring.config import MODES, ScoreSpec


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub, "embed", handler=handle, help="write one embedding per track to Parquet and its nearest-neighbour index"
    )
    add_model(parser, help=MODEL_HELP + " (the layer its head reads; a tagger's penultimate layer)")
    option(parser, "--tracks", choices=MODES, help="new: not embedded by this version yet, or changed since; all",
           default_from=lambda: MODES[0])  # fmt: skip
    option(parser, "--batch-size", type=positive_int, help="patches per model call",
           default_from=lambda: ScoreSpec.batch_size)  # fmt: skip
    option(parser, "--chunk-size", type=positive_int, help="tracks per task (default: about 8 tasks, 64-256)")
    option(parser, "--exact-below", type=non_negative_int, metavar="N",
           help="fewer tracks than this are searched exactly, more through an HNSW graph",
           default_from=lambda: EXACT_BELOW)  # fmt: skip
    add_json(parser)
    add_wait(parser)
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import describe_embed, embed_exit_code
    from genreflow.flows.runtime import run_embed

    summary = run_embed(
        settings(args, store_required=True),
        **given(args, "model", "tracks", "batch_size", "chunk_size", "exact_below", "wait_s"),
    )
    return report(summary, describe_embed, embed_exit_code, as_json=args.json)
