"""The ``genreflow`` command line: one module per command group, each adding its sub-parser and handler.

The CLI parses, validates and calls a flow; it computes nothing. Options shared by several commands
are declared once (:mod:`genreflow.cli.common`), and one handler turns every error into one line.
Prefect, Dask and TensorFlow load only inside the handlers that need them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from genreflow.cli import (
    bench,
    demo,
    doctor,
    embed,
    ingest,
    models,
    nightly,
    predict,
    score,
    serve,
    server,
    similar,
    train,
)
from genreflow.cli.common import Parser, run
from genreflow.console import EXIT_USAGE

COMMANDS = (demo, ingest, train, models, score, predict, embed, similar, nightly, serve, bench, server, doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="genreflow", description="Catalogue-scale audio genre classification: ingest, train, score.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    return run(args)
