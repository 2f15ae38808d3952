"""``genreflow train --store ROOT``: fit a model on the store's labelled tracks and register it."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.cli.common import (
    _as_argument_error,
    _checked,
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
from genreflow.pipeline.training.config import (
    AUTO,
    AUTO_CANDIDATES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_MODEL_NAME,
    HEADS,
    PATCH_HOP_RANGE,
    AugmentConfig,
    TrainConfig,
    parse_augment,
)

# the options that go into TrainConfig as given (the dataclass owns their defaults)
CONFIG_OPTIONS = ("epochs", "fine_tune_epochs", "fine_tune_layers", "batch_size", "steps_per_epoch", "learning_rate",
                  "patience", "seed", "head", "augment", "probe_folds", "patch_hop")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "train", help="train a model on the store's labelled tracks and register it",
                         handler=handle)  # fmt: skip
    option(parser, "--backbone", default_from=lambda: DEFAULT_ARCHITECTURE,
           help=f"architecture (see --list); {AUTO}: the probe of lowest cross-validated log loss among "
           f"{', '.join(AUTO_CANDIDATES)}")  # fmt: skip
    option(parser, "--probe-folds", type=fold_count, default_from=lambda: TrainConfig.probe_folds,
           help="linear probes: K of the K-fold inside train + valid that chooses C (and auto's backbone)")  # fmt: skip
    option(parser, "--patch-hop", type=patch_hop, metavar="FRACTION", default_from=lambda: TrainConfig.patch_hop,
           help="a track's prediction (and a probe's features) averages patches starting this fraction of a "
           "patch apart: 1 non-overlapping, 0.5 half-overlapping; scoring from the store uses the model's "
           "value")  # fmt: skip
    option(parser, "--model", dest="model_name", type=model_name, help="registry name: each run adds a version",
           default_from=lambda: DEFAULT_MODEL_NAME)  # fmt: skip
    option(parser, "--epochs", type=positive_int, help="epochs of the first phase",
           default_from=lambda: TrainConfig.epochs)  # fmt: skip
    option(parser, "--fine-tune-epochs", type=non_negative_int, help="pretrained: epochs with the top unfrozen",
           default_from=lambda: TrainConfig.fine_tune_epochs)  # fmt: skip
    option(parser, "--fine-tune-layers", type=non_negative_int,
           help="pretrained: top weighted backbone layers unfrozen for fine-tuning (0: all of them)",
           default_from=lambda: TrainConfig.fine_tune_layers)  # fmt: skip
    option(parser, "--batch-size", type=positive_int, help="patches per training step",
           default_from=lambda: TrainConfig.batch_size)  # fmt: skip
    option(parser, "--steps-per-epoch", type=positive_int,
           help="training steps per epoch (default: enough batches to cover every training patch once)")  # fmt: skip
    option(parser, "--head", choices=HEADS, default_from=lambda: TrainConfig.head,
           help="classifier on the backbone's features (softmax: one layer, started from the linear probe on "
           "a pretrained musicnn backbone)")  # fmt: skip
    option(parser, "--augment", type=augment_settings, metavar="KEY=V,...",
           help="training-patch augmentation: masking (probability), gain (± dB), noise (relative std), zoom "
           "(± time stretch), channels (1: draw left/right/mid views); 'none' turns all off",
           default_from=lambda: AugmentConfig().spec())  # fmt: skip
    parser.add_argument("--refit", action="store_true",
                        help="gradient models: train again on train + valid for the epochs early stopping "
                        "kept")  # fmt: skip
    option(parser, "--lr", dest="learning_rate", type=positive_float, help="learning rate",
           default_from=lambda: TrainConfig.learning_rate)  # fmt: skip
    option(parser, "--patience", type=positive_int, help="early stopping patience on validation loss",
           default_from=lambda: TrainConfig.patience)  # fmt: skip
    option(parser, "--seed", type=non_negative_int, help="random seed: split, initialisation, augmentation",
           default_from=lambda: TrainConfig.seed)  # fmt: skip
    parser.add_argument("--weights", type=Path, default=None,
                        help="ImageNet weights file for the keras.applications backbones, which then start frozen "
                        "(seed 000's recipe); without one (or one in the Keras cache) they train from random init: "
                        "nothing is ever downloaded")  # fmt: skip
    option(
        parser,
        "--device",
        choices=DEVICES,
        help="auto: a GPU when TensorFlow sees one",
        default_from=lambda: DEVICES[0],
    )
    parser.add_argument("--grid", nargs="+", default=None, metavar="KEY=V1,V2",
                        help="hyper-parameter grid scored on validation, e.g. lr=1e-3,1e-4 batch=32,64 "
                        "head=dense256,dense256x2,deep5")  # fmt: skip
    parser.add_argument("--cv", type=non_negative_int, default=0, metavar="K",
                        help="add a K-fold cross-validation estimate (dataset folds where it has them)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the architectures and exit")
    add_wait(parser)
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    if args.list:
        from genreflow.pipeline.models.architectures import ARCHITECTURES

        print(f"{AUTO:22s} inputs: musicnn96 (the best of {', '.join(AUTO_CANDIDATES)})")
        for name, arch in ARCHITECTURES.items():
            print(f"{name:22s} inputs: {', '.join(arch.inputs)}")
        return 0
    from genreflow.console import describe_training
    from genreflow.flows.runtime import run_train
    from genreflow.pipeline.training.select import parse_grid

    config = TrainConfig(
        weights=str(args.weights) if args.weights else None,
        refit=args.refit,
        **given(args, *CONFIG_OPTIONS),
    )
    result = run_train(
        settings(args, store_required=True),
        config=config,
        grid=parse_grid(args.grid, config, backbone=args.backbone) if args.grid else None,
        cv_folds=args.cv,
        **given(args, "backbone", "device", "model_name", "wait_s"),
    )
    print(describe_training(result))
    return 0


def augment_settings(text: str) -> AugmentConfig:
    """``--augment masking=1,noise=0.05``: a bad key or value is one line naming it."""
    return _as_argument_error(parse_augment, text)


def patch_hop(text: str) -> float:
    """``--patch-hop``: a fraction of a patch, within TrainConfig's range."""
    low, high = PATCH_HOP_RANGE
    return _checked(float, text, lambda v: low <= v <= high, f"a fraction of a patch from {low:g} to {high:g}")


def fold_count(text: str) -> int:
    """``--probe-folds``: cross-validation needs two folds or more."""
    return _checked(int, text, lambda v: v >= 2, "an integer of at least 2")
