"""``genreflow make-demo DIR`` and ``genreflow demo``: the synthetic catalogue, and the whole pipeline on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.cli.common import (
    add_command,
    add_runtime,
    given,
    non_negative_int,
    option,
    positive_float,
    settings,
)
from genreflow.cli.common import positive_int as positive
from genreflow.pipeline import demo_config

DEMO_DIR = Path("demo-output")


def register(sub: argparse._SubParsersAction) -> None:
    make = add_command(sub, "make-demo", help="write a synthetic labelled catalogue (GTZAN layout)",
                       handler=handle_make_demo)  # fmt: skip
    make.add_argument("directory", type=Path)
    option(make, "--difficulty", choices=demo_config.DIFFICULTIES,
           help="easy: 7 distinct genres (every model scores 100 %%); hard: 10 overlapping genres, noisy short "
           "clips, on which recipes score apart", default_from=lambda: demo_config.DEFAULT_DIFFICULTY)  # fmt: skip
    option(
        make, "--per-class", type=positive, help="tracks per genre", default_from=lambda: demo_config.DEFAULT_PER_CLASS
    )
    option(make, "--seconds", type=positive_float, help="track length",
           default_from=lambda: ", ".join(f"{s:g} {d}" for d, s in demo_config.CLIP_SECONDS.items()))  # fmt: skip
    option(make, "--seed", type=non_negative_int, default_from=lambda: demo_config.DEFAULT_SEED)
    make.add_argument("--no-broken", action="store_true", help="leave out the deliberately broken files")

    demo = add_command(
        sub, "demo", help="make the demo catalogue and run the whole pipeline on it", handler=handle_demo
    )
    demo.add_argument("--dir", type=Path, default=DEMO_DIR, help=f"where to write (default {DEMO_DIR})")
    add_runtime(demo, store_default="<dir>/store")


def handle_make_demo(args: argparse.Namespace) -> int:
    from genreflow.pipeline.demo import make_demo_catalogue

    paths = make_demo_catalogue(
        args.directory, broken=not args.no_broken, **given(args, "difficulty", "per_class", "seconds", "seed")
    )
    print(f"wrote {len(paths)} files under {args.directory / 'genres'}")
    return 0


def handle_demo(args: argparse.Namespace) -> int:
    from genreflow.flows.demo import run_demo

    return run_demo(settings(args, store_required=False), directory=args.dir)
