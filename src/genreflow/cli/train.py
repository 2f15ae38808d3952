"""``genreflow train --store ROOT``: fit a model on the store's labelled tracks and register it."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.cli.common import (
    add_command,
    add_runtime,
    add_wait,
    given,
    model_name,
    non_negative_int,
    option,
    positive_float,
    positive_int,
    settings,
)
from genreflow.infra.devices import DEVICES
from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE, DEFAULT_MODEL_NAME, TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "train", help="train a model on the store's labelled tracks and register it",
                         handler=handle)  # fmt: skip
    option(parser, "--backbone", help="architecture (see --list)", default_from=lambda: DEFAULT_ARCHITECTURE)
    option(parser, "--model", dest="model_name", type=model_name, help="registry name: each run adds a version",
           default_from=lambda: DEFAULT_MODEL_NAME)  # fmt: skip
    option(parser, "--epochs", type=positive_int, help="epochs of the first phase",
           default_from=lambda: TrainConfig.epochs)  # fmt: skip
    option(parser, "--fine-tune-epochs", type=non_negative_int, help="pretrained: epochs with the top unfrozen",
           default_from=lambda: TrainConfig.fine_tune_epochs)  # fmt: skip
    option(parser, "--batch-size", type=positive_int, help="patches per training step",
           default_from=lambda: TrainConfig.batch_size)  # fmt: skip
    option(parser, "--lr", dest="learning_rate", type=positive_float, help="learning rate",
           default_from=lambda: TrainConfig.learning_rate)  # fmt: skip
    option(parser, "--patience", type=positive_int, help="early stopping patience on validation loss",
           default_from=lambda: TrainConfig.patience)  # fmt: skip
    option(parser, "--seed", type=non_negative_int, help="random seed: split, initialisation, augmentation",
           default_from=lambda: TrainConfig.seed)  # fmt: skip
    parser.add_argument("--weights", type=Path, default=None, help="ImageNet weights file for keras.applications")
    option(
        parser,
        "--device",
        choices=DEVICES,
        help="auto: a GPU when TensorFlow sees one",
        default_from=lambda: DEVICES[0],
    )
    parser.add_argument("--grid", nargs="+", default=None, metavar="KEY=V1,V2",
                        help="hyper-parameter grid scored on validation, e.g. lr=1e-3,1e-4 batch=32,64")  # fmt: skip
    parser.add_argument("--cv", type=non_negative_int, default=0, metavar="K",
                        help="add a K-fold cross-validation estimate (dataset folds where it has them)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the architectures and exit")
    add_wait(parser)
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    if args.list:
        from genreflow.pipeline.models.architectures import ARCHITECTURES

        for name, arch in ARCHITECTURES.items():
            print(f"{name:22s} inputs: {', '.join(arch.inputs)}")
        return 0
    from genreflow.console import describe_training
    from genreflow.flows.runtime import run_train
    from genreflow.pipeline.training.select import parse_grid

    config = TrainConfig(
        weights=str(args.weights) if args.weights else None,
        **given(args, "epochs", "fine_tune_epochs", "batch_size", "learning_rate", "patience", "seed"),
    )
    result = run_train(
        settings(args, store_required=True),
        config=config,
        grid=parse_grid(args.grid, config) if args.grid else None,
        cv_folds=args.cv,
        **given(args, "backbone", "device", "model_name", "wait_s"),
    )
    print(describe_training(result))
    return 0
