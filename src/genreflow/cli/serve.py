"""``genreflow serve --store ROOT --source URI...``: serve the Prefect deployments from this process,
``nightly`` on its cron schedule, ``backfill``, ``train`` and ``score`` on demand, until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import Any

from genreflow.cli.common import add_command, add_runtime, option, settings
from genreflow.infra.deployments import DEFAULT_CRON


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "serve", handler=handle,
                         help="serve the Prefect deployments: nightly on a schedule; the others on demand")  # fmt: skip
    parser.add_argument("--source", dest="sources", action="append", required=True, metavar="URI",
                        help="a folder or s3:// prefix the nightly run ingests (repeat for several; "
                             "the first is also the backfill deployment's)")  # fmt: skip
    option(parser, "--cron", metavar="EXPR", help="when the nightly run starts (five-field cron)",
           default_from=lambda: DEFAULT_CRON)  # fmt: skip
    option(parser, "--timezone", metavar="TZ", help="IANA zone of --cron (default this machine's zone, else UTC)")
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import EXIT_OK
    from genreflow.infra.deployments import check_cron, check_timezone, local_timezone
    from genreflow.pipeline.datasets import require_source
    from genreflow.pipeline.store import StoreLayout, require_store_root

    resolved = settings(args, store_required=True)
    cron = check_cron(args.cron or DEFAULT_CRON)  # all checked before the Prefect API is prepared
    timezone = check_timezone(args.timezone) if args.timezone else local_timezone()
    for source in args.sources:
        require_source(source, storage_options=resolved.storage_options)
    require_store_root(StoreLayout(resolved.store, resolved.storage_options))

    from genreflow.flows.runtime import prepare

    prepare(resolved)
    from genreflow.infra.deployments import build_deployments, serve
    from genreflow.infra.logs import quiet_loggers

    deployments = build_deployments(resolved, sources=args.sources, store=resolved.store, cron=cron, timezone=timezone)
    print(describe(deployments, ui=_ui_url(resolved.home)), flush=True)
    if not resolved.verbose:
        quiet_loggers()  # importing Prefect configured its loggers afresh
    serve(deployments)  # returns on Ctrl-C, the schedules paused
    print("stopped serving; the nightly schedule is paused until `genreflow serve` runs again", flush=True)
    return EXIT_OK


def describe(deployments: list[Any], *, ui: str | None) -> str:
    """Each deployment with its schedule and next run times, how to run one, and the UI address."""
    from genreflow.infra.deployments import next_runs

    width = max(len(d.full_name) for d in deployments)
    lines = [f"Serving {len(deployments)} Prefect deployments from this process (Ctrl-C stops):"]
    for deployment in deployments:
        schedules = [item.schedule for item in deployment.schedules or []]
        if schedules:
            when = "; ".join(f"cron {s.cron!r} ({s.timezone})" for s in schedules)
            runs = ", ".join(f"{date:%Y-%m-%d %H:%M %Z}" for date in next_runs(deployment, 3))
            lines.append(f"  {deployment.full_name:<{width}}  {when}; next runs: {runs}")
        else:
            lines.append(f"  {deployment.full_name:<{width}}  on demand")
    on_demand = [d.full_name for d in deployments if not d.schedules]
    if on_demand:
        lines.append(f"Run one now: prefect deployment run '{on_demand[-1]}' [--param NAME=VALUE ...], or from the UI")
    lines.append(f"Prefect UI: {ui or 'unknown (PREFECT_API_URL is not set)'}")
    return "\n".join(lines)


def _ui_url(home: Any) -> str | None:
    import os

    from genreflow.infra.prefect_api import prefect_ui_url, ui_url_of

    api = os.environ.get("PREFECT_API_URL")
    return prefect_ui_url(home) or (ui_url_of(api) if api else None)
