"""``genreflow predict FILE...``: the top labels of audio files, without a store run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genreflow.cli.common import (
    add_command,
    add_json,
    add_model,
    add_s3,
    add_store,
    add_verbose,
    settings,
)
from genreflow.cli.score import MODEL_HELP
from genreflow.console import EXIT_OK, EXIT_TRACKS_FAILED
from genreflow.pipeline.scoring.config import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "predict", help="print the top 3 labels of audio files", handler=handle)
    parser.add_argument("files", nargs="+", type=Path)
    add_model(parser, help=MODEL_HELP)
    add_store(parser, default="none: only the zero-shot taggers then")
    add_s3(parser)
    add_verbose(parser)
    add_json(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.infra.logs import configure_environment
    from genreflow.pipeline.errors import DecodeError, ParameterError
    from genreflow.pipeline.scoring.predict import predict_file
    from genreflow.pipeline.scoring.scorers import ZERO_SHOT, load_scorer, resolve_model
    from genreflow.pipeline.store import StoreLayout

    resolved = settings(args, store_required=False)
    model = args.model or DEFAULT_MODEL
    if not resolved.store and model.partition("@")[0] not in ZERO_SHOT:
        raise ParameterError(f"--store (or GENREFLOW_STORE) is required for the registered model {model!r}")
    configure_environment(verbose=args.verbose)
    layout = StoreLayout(resolved.store or "", resolved.storage_options)
    scorer = load_scorer(layout, resolve_model(layout, model))
    status = EXIT_OK
    for path in args.files:
        try:
            result = predict_file(path, scorer)
        except (DecodeError, OSError) as error:
            print(f"genreflow: {path}: {error}", file=sys.stderr)
            status = EXIT_TRACKS_FAILED
            continue
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{path}  ({result['model']}, {result['n_windows']} windows)")
            for rank, entry in enumerate(result["top"], 1):
                print(f"  {rank}. {entry['label']:24s} {entry['probability']:.3f}")
    return status
