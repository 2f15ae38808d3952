"""``genreflow similar TRACK_ID|FILE``: the catalogue's tracks most like one track or one audio file."""

from __future__ import annotations

import argparse

from genreflow.cli.common import (
    add_command,
    add_json,
    add_model,
    add_s3,
    add_store,
    add_verbose,
    option,
    positive_int,
    report,
    settings,
)
from genreflow.console import EXIT_OK
from genreflow.pipeline.embeddings.config import DEFAULT_K
from genreflow.pipeline.scoring.config import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub, "similar", handler=handle, help="the tracks most like a catalogue track or an audio file (`embed`'s index)"
    )
    parser.add_argument("query", metavar="TRACK_ID|FILE", help="a track id, or an audio file (embedded on the fly)")
    add_model(parser, help="the model whose embeddings to search (its production version, else its newest)")
    option(parser, "--k", type=positive_int, help="neighbours to return", default_from=lambda: DEFAULT_K)
    add_store(parser)
    add_s3(parser)
    add_verbose(parser)
    add_json(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import describe_similar
    from genreflow.infra.logs import configure_environment
    from genreflow.pipeline.embeddings.similar import find_similar
    from genreflow.pipeline.store import StoreLayout

    resolved = settings(args, store_required=True)
    configure_environment(verbose=args.verbose)
    layout = StoreLayout(resolved.store, resolved.storage_options)
    result = find_similar(layout, args.query, model=args.model or DEFAULT_MODEL, k=args.k or DEFAULT_K)
    return report(result, describe_similar, lambda _: EXIT_OK, as_json=args.json)
