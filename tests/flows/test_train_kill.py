"""A training run really killed mid-epoch (issue #12): a real ``genreflow train`` SIGKILLed while an epoch
is under way, then the same command again. The second run trains only the epochs the first did not
finish, the two together train what one run would, early stopping keeps the best epoch of both, and
the registry holds one complete version."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genreflow.pipeline.demo import STYLES, make_demo_catalogue
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.store.lease import read_lease
from tests import reliability

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
EPOCHS = 6
KILL_AFTER = 2  # finished epochs the killed run has saved when the kill is sent
BACKBONE = "cnn1"  # one conv-pool block on mel128: the quickest gradient-trained architecture on a CPU
MODEL = "killed-mid-epoch"
SEED = 0


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, settings) -> str:
    """Four 4-s clips per demo genre, mel128 only, decoded in the flow's process: one patch a track."""
    from genreflow.flows.runtime import run_ingest

    root = tmp_path_factory.mktemp("train-kill")
    make_demo_catalogue(root / "catalogue", per_class=4, seconds=4.0, seed=5, broken=False)
    in_process = dataclasses.replace(settings, in_process_tracks=64)  # decoding is not what is tested here
    summary = run_ingest(in_process, source=str(root / "catalogue"), store=str(root / "store"),
                         feature_sets=["mel128"], show_progress=False)  # fmt: skip
    assert summary.counts == {"ok": 4 * len(STYLES)}
    return str(root / "store")


def _saved_state(backups: list[Path]) -> dict | None:
    """The head phase's saved state, once the run has written one (None before)."""
    for folder in backups:
        with contextlib.suppress(FileNotFoundError):
            return json.loads((folder / "state.json").read_text())
    return None


def _session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of the session ``session`` leads."""
    import psutil

    found = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            if os.getsid(process.pid) == session and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


def test_a_run_killed_mid_epoch_trains_only_the_epochs_it_had_not_finished(small_store, tmp_path, capsys):
    """SIGKILL ``genreflow train`` after epoch 2 of 6 was saved, while epoch 3 runs; the same command
    again resumes after epoch 2: its own fit trains epochs 3-6 only, the card's history begins with
    the killed run's epochs value for value, the weights registered are those of the best epoch of
    all six, and ``models list`` shows one version whose card and model load."""
    from genreflow.cli import main
    from genreflow.pipeline import registry

    home = Path(os.environ["GENREFLOW_HOME"])  # tests.services: the subprocesses inherit it and PREFECT_API_URL
    # patience = epochs: early stopping never ends the phase, so one uninterrupted run trains all EPOCHS
    argv = [str(Path(sys.executable).with_name("genreflow")), "train", "--store", small_store, "--backbone", BACKBONE,
            "--model", MODEL, "--epochs", str(EPOCHS), "--patience", str(EPOCHS), "--steps-per-epoch", "2",
            "--batch-size", "8", "--augment", "none", "--seed", str(SEED)]  # fmt: skip
    earlier = set(home.glob("training/*"))
    started: list[subprocess.Popen] = []
    layout = StoreLayout(small_store)
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def train(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.out", "w") as stdout, open(tmp_path / f"{name}.err", "w") as stderr:
            started.append(subprocess.Popen(argv, stdout=stdout, stderr=stderr, start_new_session=True))
        return started[-1]

    try:
        killed = train("killed")
        deadline = time.monotonic() + 240
        saved = None
        while killed.poll() is None and time.monotonic() < deadline:
            backups = [d / "head-backup" for d in set(home.glob("training/*")) - earlier]
            if (saved := _saved_state(backups)) and saved["state"]["epoch"] >= KILL_AFTER:
                break
            time.sleep(0.005)
        assert killed.poll() is None, f"the run ended before the kill: {(tmp_path / 'killed.err').read_text()}"
        assert saved is not None, "no epoch was saved in time"
        os.killpg(killed.pid, signal.SIGKILL)  # the run and anything it started
        killed.wait()
        assert killed.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while _session_processes(killed.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _session_processes(killed.pid), "a process of the killed run outlived it"

        [state] = set(home.glob("training/*")) - earlier
        at_kill = json.loads((state / "head-backup" / "state.json").read_text())
        done_before = at_kill["state"]["epoch"]  # what the kill left: it may have saved one more meanwhile
        assert KILL_AFTER <= done_before < EPOCHS and not (state / "head.done.weights.h5").exists()
        assert len(at_kill["state"]["history"]["val_loss"]) == done_before
        assert {p.name for p in (state / "head-backup").iterdir()} >= {"state.json", at_kill["weights"]}
        assert registry.list_models(layout) == []  # nothing half registered
        assert read_lease(layout) is None  # train leases the store only to register

        validation = pool.submit(_validation_patches, layout)  # TensorFlow's import overlaps the resumed run
        resumed = train("resumed")
        assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.err").read_text()
    finally:  # whatever failed, no process of either run outlives the test
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        pool.shutdown()

    assert not state.exists()  # a registered run leaves no state behind
    out = (tmp_path / "resumed.out").read_text()
    assert f"resumed an interrupted run: head after epoch {done_before} of {EPOCHS} " in out, out
    capsys.readouterr()
    assert main(["models", "list", "--store", small_store, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["architecture"]) == (MODEL, BACKBONE) and f"{MODEL}@{listed['version']}" in out
    ref = registry.resolve(layout, MODEL)
    card = registry.read_card(layout, ref)
    fit = card["fit"]
    epochs_trained = len(fit["history"]["head/loss"])
    reliability.record("training SIGKILLed mid-epoch", faults={"training SIGKILL mid-epoch": 1}, runs_completed=1,
                       half_written=len(_version_folders(layout)) - len(registry.list_models(layout)))  # fmt: skip
    assert epochs_trained == EPOCHS

    # What ran: the resumed fit trained only the epochs the kill left undone, and together one run's worth.
    run = fit["epochs_run"]["head"]
    assert run["resumed_from_epoch"] == done_before
    assert run["this_run"] == list(range(done_before + 1, EPOCHS + 1))
    assert run["epochs"] == done_before + len(run["this_run"]) == EPOCHS and not run["stopped_early"]
    history = fit["history"]
    assert {len(values) for values in history.values()} == {EPOCHS}
    for key, values in at_kill["state"]["history"].items():  # the killed run's epochs, not trained again
        assert history[f"head/{key}"][:done_before] == values, key

    # Early stopping chose among all six epochs, the killed run's included, and its weights are the ones
    # registered: the registered model's loss on the validation patches is that epoch's.
    val_loss = history["head/val_loss"]
    kept = fit["early_stopping"]["head"]
    assert kept["epochs"] == 1 + int(np.argmin(val_loss)) and kept["val_loss"] == min(val_loss)
    assert kept["val_loss"] <= min(at_kill["state"]["history"]["val_loss"])  # never worse than the killed run saw
    x, labels = validation.result()
    probabilities = registry.load_model(layout, ref).predict(x, batch_size=card["config"]["batch_size"], verbose=0)
    registered_loss = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)).mean()
    assert float(registered_loss) == pytest.approx(kept["val_loss"], rel=1e-4)
    assert card["seed"] == SEED and card["metrics"]["n_tracks"] == card["data"]["counts"]["test"] > 0


def _version_folders(layout: StoreLayout) -> list[Path]:
    """Every model version folder in the registry, complete or not (``list_models`` lists the complete)."""
    return [version for name in Path(layout.models).iterdir() if name.is_dir() for version in name.iterdir()
            if version.is_dir()]  # fmt: skip


def _validation_patches(layout: StoreLayout) -> tuple:
    """The validation split's patches (model inputs) and their labels, as ``fit`` measures val_loss on."""
    import keras  # noqa: F401  TensorFlow's import, here in the background

    from genreflow.pipeline.models.architectures import get_architecture
    from genreflow.pipeline.patches import PatchReader, evaluation_patches, model_inputs
    from genreflow.pipeline.training.data import labelled_tracks

    arch = get_architecture(BACKBONE)
    data = labelled_tracks(layout, arch.inputs, seed=SEED, needed_by=BACKBONE)
    valid = data.split("valid")
    x, owners = evaluation_patches(PatchReader(layout, arch), valid)
    labels = valid["label"].map({name: i for i, name in enumerate(data.classes)}).to_numpy()[owners]
    return model_inputs(x), labels
