"""``genreflow server start|stop|status``: the local Prefect server genreflow starts and reuses."""

from __future__ import annotations

import argparse

from genreflow.cli.common import add_command, add_verbose, settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "server", help="the local Prefect server genreflow starts and reuses", handler=handle)
    parser.add_argument("action", choices=["start", "stop", "status"])
    add_verbose(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.infra.logs import configure_environment
    from genreflow.infra.prefect_api import (
        ensure_prefect_api,
        local_server_ui_url,
        local_server_url,
        stop_local_server,
        ui_url_of,
    )

    resolved = settings(args, store_required=False)
    configure_environment(verbose=args.verbose)
    if args.action == "start":
        url = ensure_prefect_api(resolved.home)  # a configured PREFECT_API_URL, else the local server
        print(f"api: {url}\nui: {ui_url_of(url)}")
    elif args.action == "stop":
        print("stopped" if stop_local_server(resolved.home) else "no local server was running")
    else:
        url = local_server_url(resolved.home)
        print(f"api: {url}\nui: {local_server_ui_url(resolved.home)}" if url else "no local server running")
    return 0
