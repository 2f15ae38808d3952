"""``genreflow models list|show|promote``: the model registry of a store."""

from __future__ import annotations

import argparse
import json

from genreflow.cli.common import add_command, add_json, add_s3, add_store, add_verbose, add_wait, model_spec, settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "models", help="the model registry: list, show, promote", handler=handle)
    parser.add_argument("action", choices=["list", "show", "promote"])
    parser.add_argument("spec", nargs="?", type=model_spec, help="NAME or NAME@VERSION (show, promote)")
    add_store(parser)
    add_wait(parser)
    add_s3(parser)
    add_verbose(parser)
    add_json(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.pipeline import registry
    from genreflow.pipeline.errors import ParameterError
    from genreflow.pipeline.store import StoreLayout

    resolved = settings(args, store_required=True)
    layout = StoreLayout(resolved.store, resolved.storage_options)
    if args.action == "list":
        entries = registry.list_models(layout)
        if args.json:
            print(json.dumps(entries, indent=2))
            return 0
        for e in entries:
            flag = "*" if e["production"] else " "
            print(f"{flag} {e['name']}@{e['version']}  {e['architecture']}  accuracy {e['accuracy']:.3f}  "
                  f"macro-F1 {e['macro_f1']:.3f}")  # fmt: skip
        return 0
    if not args.spec:
        raise ParameterError(f"`models {args.action}` needs NAME or NAME@VERSION")
    if args.action == "promote":
        from genreflow.pipeline.store.lease import acquire_lease

        with acquire_lease(layout, holder=f"promote {args.spec}", wait_s=args.wait_s or 0):
            print(f"production: {registry.promote(layout, args.spec)}")
        return 0
    print(json.dumps(registry.read_card(layout, registry.resolve(layout, args.spec)), indent=2))
    return 0
