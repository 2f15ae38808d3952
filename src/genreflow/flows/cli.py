"""The ``genreflow`` command line. Parses, resolves settings, calls a flow; imports lazily so
``genreflow --help`` stays instant (Prefect and TensorFlow load only for commands that need them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_TRACKS_FAILED, EXIT_USAGE = 0, 1, 2
FAILURES_SHOWN = 20  # the rest are in the failures table


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    from genreflow.pipeline.errors import GenreflowError

    try:
        return int(args.handler(args) or EXIT_OK)
    except GenreflowError as error:
        print(f"genreflow: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genreflow",
        description="Catalogue-scale audio genre classification: ingest, train, score.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = sub.add_parser("make-demo", help="write a synthetic labelled catalogue (GTZAN layout)")
    demo.add_argument("directory", type=Path)
    demo.add_argument("--per-class", type=int, default=20, help="tracks per genre (default 20)")
    demo.add_argument("--seconds", type=float, default=12.0, help="track length (default 12)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-broken", action="store_true", help="leave out the deliberately broken files")
    demo.set_defaults(handler=_make_demo)

    ingest = sub.add_parser("ingest", help="decode new or changed tracks into the feature store")
    ingest.add_argument("source", help="folder or s3://bucket/prefix holding the audio")
    _add_runtime_flags(ingest)
    _add_ingest_flags(ingest)
    ingest.set_defaults(handler=_ingest)

    run_demo = sub.add_parser("demo", help="make the demo catalogue and run the whole pipeline on it")
    run_demo.add_argument("--dir", type=Path, default=Path("demo-output"), help="where to write (default demo-output)")
    _add_runtime_flags(run_demo, store_required=False)
    run_demo.set_defaults(handler=_demo)

    train = sub.add_parser("train", help="train a model on the store's labelled tracks and register it")
    train.add_argument("--backbone", default="musicnn-msd-linear", help="architecture (default musicnn-msd-linear)")
    train.add_argument("--model", default=None, help="registry name (default: the backbone's name)")
    train.add_argument("--epochs", type=int, default=30, help="epochs of the first phase (default 30)")
    train.add_argument("--fine-tune-epochs", type=int, default=10, help="pretrained: epochs with the top unfrozen")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    train.add_argument("--patience", type=int, default=5, help="early stopping patience on validation loss")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--weights", type=Path, default=None, help="ImageNet weights file for keras.applications")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    train.add_argument("--grid", nargs="+", default=None, metavar="KEY=V1,V2",
                       help="hyper-parameter grid scored on validation, e.g. lr=1e-3,1e-4 batch=32,64")  # fmt: skip
    train.add_argument("--cv", type=int, default=0, metavar="K", help="add a K-fold cross-validation estimate")
    train.add_argument("--list", action="store_true", help="list the architectures and exit")
    _add_runtime_flags(train, store_required=False)
    train.set_defaults(handler=_train)

    score = sub.add_parser("score", help="write per-track probabilities of a model to Parquet")
    score.add_argument(
        "--model",
        default="genre",
        metavar="NAME[@VERSION]",
        help="registered model (default genre: its production version, else its newest) or a zero-shot "
        "tagger: musicnn-msd-tags, musicnn-mtt-tags, vgg-msd-tags, vgg-mtt-tags",
    )
    score.add_argument(
        "--tracks",
        default="new",
        metavar="new|all|FILE",
        help="new (default: not scored by this version yet, or changed since), all, or a file of track ids",
    )
    score.add_argument(
        "--full-track", action="store_true", help="decode each whole track again, in overlapping windows"
    )
    score.add_argument("--hop-s", type=float, default=None, help="full-track window hop (default half a window)")
    score.add_argument("--out", default=None, help="scores root, folder or s3:// (default <store>/scores)")
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--chunk-size", type=int, default=None, help="tracks per task (default: about 8 tasks, 64-256)")
    score.add_argument("--threshold", type=float, default=0.5, help="report tracks whose top probability is lower")
    score.add_argument("--json", action="store_true", help="print the run summary as JSON")
    _add_runtime_flags(score)
    score.set_defaults(handler=_score)

    predict = sub.add_parser("predict", help="print the top 3 labels of audio files")
    predict.add_argument("files", nargs="+", type=Path)
    predict.add_argument("--model", default="genre", metavar="NAME[@VERSION]", help="as for `score` (default genre)")
    predict.add_argument("--store", default=None, help="store root holding the registry (not needed for *-tags)")
    predict.add_argument("--s3-endpoint-url", default=None)
    predict.add_argument("--verbose", action="store_true")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    predict.set_defaults(handler=_predict)

    models = sub.add_parser("models", help="the model registry: list, show, promote")
    models.add_argument("action", choices=["list", "show", "promote"])
    models.add_argument("spec", nargs="?", help="NAME or NAME@VERSION (show, promote)")
    models.add_argument("--store", default=None, help="store root (env GENREFLOW_STORE)")
    models.add_argument("--s3-endpoint-url", default=None)
    models.add_argument("--verbose", action="store_true")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=_models)

    bench = sub.add_parser("bench", help="measure throughput against a plain serial baseline")
    bench.add_argument("what", choices=["ingest", "train", "score"])
    bench.add_argument("--patches", type=int, default=256, help="train: patches per measurement (default 256)")
    bench.add_argument("--tracks", type=int, default=120, help="clips to generate (default 120)")
    bench.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    bench.add_argument("--dir", type=Path, default=None, help="working folder (default: a temporary one)")
    _add_runtime_flags(bench, store_required=False)
    bench.set_defaults(handler=_bench)

    server = sub.add_parser("server", help="the local Prefect server genreflow starts and reuses")
    server.add_argument("action", choices=["start", "stop", "status"])
    server.add_argument("--verbose", action="store_true")
    server.set_defaults(handler=_server)
    return parser


def _add_runtime_flags(parser: argparse.ArgumentParser, *, store_required: bool = True) -> None:
    parser.add_argument(
        "--store",
        required=False,
        help="store root, folder or s3:// (env GENREFLOW_STORE)"
        + ("" if store_required else "; default inside the working folder"),
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="local Dask worker processes (env GENREFLOW_WORKERS, default 2)"
    )
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler (env GENREFLOW_DASK_ADDRESS)")
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 API endpoint (env GENREFLOW_S3_ENDPOINT_URL)")
    parser.add_argument("--verbose", action="store_true", help="show Prefect, Dask and library logs")
    parser.set_defaults(store_required=store_required)


def _add_ingest_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="auto", choices=["auto", "gtzan", "fma", "us8k", "folder", "unlabelled"])
    parser.add_argument("--fma-subset", default="small", choices=["small", "medium", "large"])
    parser.add_argument("--features", default="mel128", help="comma-separated: mel128,musicnn96,wavelet")
    parser.add_argument("--shard-size", type=int, default=128, help="tracks per task (default 128)")
    parser.add_argument("--window-s", type=float, default=None, help="clip window (default 30 s; 4 s for UrbanSound8K)")
    parser.add_argument("--min-duration-s", type=float, default=1.0, help="shorter tracks fail (default 1 s)")
    parser.add_argument("--channel-views", default="mid", help="rows per track: mid, or mid,left,right (seed 002)")
    parser.add_argument("--retry-failed", action="store_true", help="decode again files that failed before")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")


def _settings(args: argparse.Namespace) -> Any:
    from genreflow.infra.settings import Settings

    settings = Settings.resolve(
        store=getattr(args, "store", None),
        workers=getattr(args, "workers", None),
        dask_address=getattr(args, "dask_address", None),
        s3_endpoint_url=getattr(args, "s3_endpoint_url", None),
        verbose=args.verbose,
    )
    if getattr(args, "store_required", False) and not settings.store:
        raise SystemExit("genreflow: error: --store (or GENREFLOW_STORE) is required")
    return settings


def _make_demo(args: argparse.Namespace) -> int:
    from genreflow.pipeline.demo import make_demo_catalogue

    paths = make_demo_catalogue(
        args.directory, per_class=args.per_class, seconds=args.seconds, seed=args.seed, broken=not args.no_broken
    )
    print(f"wrote {len(paths)} files under {args.directory / 'genres'}")
    return EXIT_OK


def _ingest(args: argparse.Namespace) -> int:
    from genreflow.flows.runtime import run_ingest

    settings = _settings(args)
    summary = run_ingest(
        settings,
        source=args.source,
        dataset=args.dataset,
        fma_subset=args.fma_subset,
        feature_sets=args.features.split(","),
        shard_size=args.shard_size,
        window_s=args.window_s,
        min_duration_s=args.min_duration_s,
        channel_views=args.channel_views.split(","),
        retry_failed=args.retry_failed,
    )
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(describe_ingest(summary))
    return EXIT_TRACKS_FAILED if summary["failures"] or summary["unprocessed"] else EXIT_OK


def describe_ingest(summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    lines = [
        f"ingest {summary['run_id']}: {summary['listed']} listed in {summary['source']} ({summary['dataset']}), "
        f"{summary['selected']} new or changed",
        f"  ok {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, skipped {counts.get('skipped', 0)}, "
        f"not processed {len(summary['unprocessed'])}; {summary['wall_s']:.1f} s",
        f"  store: {summary['store']} (features: {', '.join(summary['feature_sets'])})",
    ]
    lines += [f"  failed: {f['uri']}: {f['reason']}" for f in summary["failures"]]
    lines += [f"  not processed: {f['uri']}: {f['reason']}" for f in summary["unprocessed"]]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from genreflow.flows.runtime import run_demo

    settings = _settings(args)
    return run_demo(settings, directory=args.dir)


def _train(args: argparse.Namespace) -> int:
    if args.list:
        from genreflow.pipeline.models.architectures import ARCHITECTURES

        for name, arch in ARCHITECTURES.items():
            print(f"{name:22s} inputs: {', '.join(arch.inputs)}")
        return EXIT_OK
    from genreflow.flows.runtime import run_train
    from genreflow.pipeline.training.fit import TrainConfig

    settings = _settings(args)
    if not settings.store:
        raise SystemExit("genreflow: error: --store (or GENREFLOW_STORE) is required")
    config = TrainConfig(
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        seed=args.seed,
        weights=str(args.weights) if args.weights else None,
    )
    from genreflow.pipeline.training.select import parse_grid

    grid = parse_grid(args.grid, config) if args.grid else None
    result = run_train(
        settings, backbone=args.backbone, model_name=args.model, config=config, device=args.device, grid=grid,
        cv_folds=args.cv,
    )  # fmt: skip
    print(describe_training(result))
    return EXIT_OK


def describe_training(result: dict[str, Any]) -> str:
    metrics = result["card"]["metrics"]
    return "\n".join(
        [
            f"trained {result['name']}@{result['version']} ({result['card']['architecture']}) on {result['device']}",
            f"  test: accuracy {metrics['accuracy']:.3f}, top-3 {metrics['top3_accuracy']:.3f}, "
            f"macro-F1 {metrics['macro_f1']:.3f} on {metrics['n_tracks']} tracks",
            f"  report: {result['path']}/report/index.html",
            *_selection_lines(result["card"].get("selection", {})),
        ]
    )


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    lines = [
        f"  grid lr={p['learning_rate']:g} batch={p['batch_size']}: valid accuracy {p['accuracy']:.3f}"
        for p in selection.get("grid", [])
    ]
    if "chosen" in selection:
        lines.append(f"  chosen on validation: {selection['chosen']}")
    if cv := selection.get("cross_validation"):
        lines.append(
            f"  {cv['folds']}-fold cross-validation: accuracy {cv['accuracy']['mean']:.3f} ± "
            f"{cv['accuracy']['std']:.3f}, macro-F1 {cv['macro_f1']['mean']:.3f} ± {cv['macro_f1']['std']:.3f}"
        )
    return lines


def _models(args: argparse.Namespace) -> int:
    from genreflow.pipeline import registry
    from genreflow.pipeline.store import StoreLayout

    settings = _settings(args)
    if not settings.store:
        raise SystemExit("genreflow: error: --store (or GENREFLOW_STORE) is required")
    layout = StoreLayout(settings.store, settings.storage_options)
    if args.action == "list":
        entries = registry.list_models(layout)
        if args.json:
            print(json.dumps(entries, indent=2))
            return EXIT_OK
        for e in entries:
            flag = "*" if e["production"] else " "
            print(f"{flag} {e['name']}@{e['version']}  {e['architecture']}  accuracy {e['accuracy']:.3f}  "
                  f"macro-F1 {e['macro_f1']:.3f}")  # fmt: skip
        return EXIT_OK
    if not args.spec:
        raise SystemExit(f"genreflow: error: `models {args.action}` needs NAME or NAME@VERSION")
    if args.action == "promote":
        print(f"production: {registry.promote(layout, args.spec)}")
        return EXIT_OK
    print(json.dumps(registry.read_card(layout, registry.resolve(layout, args.spec)), indent=2))
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from genreflow.flows.runtime import run_score

    settings = _settings(args)
    summary = run_score(
        settings,
        model=args.model,
        tracks=args.tracks,
        full_track=args.full_track,
        hop_s=args.hop_s,
        out=args.out,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        threshold=args.threshold,
    )
    print(json.dumps(summary, indent=2, default=str) if args.json else describe_scoring(summary))
    return EXIT_TRACKS_FAILED if summary["failed"] else EXIT_OK


def describe_scoring(summary: dict[str, Any]) -> str:
    top = ", ".join(f"{label} {n}" for label, n in list(summary["top_labels"].items())[:8])
    lines = [
        f"score {summary['model']}@{summary['version']} ({summary['mode']}): {summary['scored']} of "
        f"{summary['selected']} selected tracks scored, {summary['n_patches']} windows, {summary['wall_s']:.1f} s",
        f"  top labels: {top or '-'}; {summary['below_threshold']} below {summary['threshold']:g}",
        f"  scores: {summary['scores']}/",
    ]
    shown = summary["failures"][:FAILURES_SHOWN]
    lines += [f"  unscored: {f['track_id']} {f['uri']}: {f['reason']}" for f in shown]
    if len(summary["failures"]) > len(shown):
        lines.append(f"  … {len(summary['failures']) - len(shown)} more in {summary['scores']}/_failures.csv")
    return "\n".join(lines)


def _predict(args: argparse.Namespace) -> int:
    from genreflow.infra.logs import configure_environment
    from genreflow.infra.settings import Settings
    from genreflow.pipeline.errors import DecodeError
    from genreflow.pipeline.scoring.predict import predict_file
    from genreflow.pipeline.scoring.scorers import ZERO_SHOT, load_scorer, resolve_model
    from genreflow.pipeline.store import StoreLayout

    settings = Settings.resolve(store=args.store, s3_endpoint_url=args.s3_endpoint_url, verbose=args.verbose)
    configure_environment(verbose=args.verbose)
    if not settings.store and args.model.partition("@")[0] not in ZERO_SHOT:
        raise SystemExit("genreflow: error: --store (or GENREFLOW_STORE) is required for a registered model")
    layout = StoreLayout(settings.store or "", settings.storage_options)
    scorer = load_scorer(layout, resolve_model(layout, args.model))
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


def _bench(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.what == "train":
        from genreflow.bench.train import bench_train
        from genreflow.flows.runtime import prepare

        prepare(settings)
        print(bench_train(settings, patches=args.patches, directory=args.dir))
        return EXIT_OK
    if args.what == "score":
        from genreflow.bench.score import bench_score

        print(bench_score(settings, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
        return EXIT_OK
    from genreflow.bench.ingest import bench_ingest

    print(bench_ingest(settings, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
    return EXIT_OK


def _server(args: argparse.Namespace) -> int:
    from genreflow.infra.logs import configure_environment
    from genreflow.infra.prefect_api import ensure_prefect_api, local_server_url, stop_local_server
    from genreflow.infra.settings import Settings

    settings = Settings.resolve(verbose=args.verbose)
    configure_environment(verbose=args.verbose)
    if args.action == "start":
        print(ensure_prefect_api(settings.home))
    elif args.action == "stop":
        print("stopped" if stop_local_server(settings.home) else "no local server was running")
    else:
        url = local_server_url(settings.home)
        print(url or "no local server running")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
