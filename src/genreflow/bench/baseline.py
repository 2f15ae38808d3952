"""What a user would run instead of genreflow: the seeds' per-file loop, and the obvious parallel script.

Both are runnable as scripts (``python -m genreflow.bench.baseline serial|joblib PATHS OUT``), so that
``bench ingest --catalogue gtzan-wav`` times them from outside like any command, start-up included.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np


def mel_to_npy(path: Path, out_dir: Path) -> None:
    """One file as the seeds do it: ``librosa.load(sr=22050)`` + ``melspectrogram`` + ``power_to_db`` + ``np.save``."""
    y, sr = librosa.load(path, sr=22050)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128))
    np.save(out_dir / f"{Path(path).stem}.npy", mel)


def serial_mel_baseline(paths: Sequence[Path], out_dir: Path) -> float:
    """The seeds' serial loop over ``paths``; returns seconds taken."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in paths:
        mel_to_npy(path, out_dir)
    return time.perf_counter() - started


def joblib_mel_baseline(paths: Sequence[Path], out_dir: Path, *, jobs: int) -> float:
    """The ten-line parallel script: the same per-file function under ``joblib.Parallel(n_jobs=jobs)``."""
    from joblib import Parallel, delayed

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    Parallel(n_jobs=jobs)(delayed(mel_to_npy)(path, out_dir) for path in paths)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genreflow.bench.baseline", description=__doc__)
    parser.add_argument("loop", choices=["serial", "joblib"])
    parser.add_argument("paths", type=Path, help="a text file naming one audio file per line")
    parser.add_argument("out", type=Path, help="folder for the .npy files")
    parser.add_argument("--jobs", type=int, default=2, help="joblib: processes (default 2)")
    args = parser.parse_args(argv)
    paths = [Path(line) for line in args.paths.read_text().splitlines() if line]
    if args.loop == "serial":
        serial_mel_baseline(paths, args.out)
    else:
        joblib_mel_baseline(paths, args.out, jobs=args.jobs)


if __name__ == "__main__":
    main()
