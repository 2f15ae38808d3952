"""``genreflow doctor --store ROOT [--repair]``: a store's consistency, one line per finding.

Exit code 0 when the store is clean, 1 when something was found (after ``--repair``: what is left).
"""

from __future__ import annotations

import argparse

from genreflow.cli.common import add_command, add_s3, add_store, add_verbose, add_wait, settings
from genreflow.console import EXIT_OK

EXIT_FINDINGS = 1  # like a run whose tracks failed: it finished, and something needs a look


def register(sub: argparse._SubParsersAction) -> None:
    purpose = "check a store: files that do not read, rows out of place, leftovers of dead runs"
    parser = add_command(sub, "doctor", help=purpose, handler=handle)
    add_store(parser)
    parser.add_argument("--repair", action="store_true",
                        help="first do the safe repairs under the store's lease: take over a dead run's lease, "
                             "commit the receipts of interrupted runs (damaged files are only reported)")  # fmt: skip
    add_wait(parser)
    add_s3(parser)
    add_verbose(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.store.doctor import check_store, repair_store, require_store

    resolved = settings(args, store_required=True)
    layout = StoreLayout(resolved.store, resolved.storage_options)
    require_store(layout)
    if args.repair:
        for line in repair_store(layout, wait_s=args.wait_s or 0).lines():
            print(line)
    findings = check_store(layout)
    for finding in findings:
        print(finding)
    if not findings:
        print(f"{layout.root}: no findings")
    return EXIT_FINDINGS if findings else EXIT_OK
