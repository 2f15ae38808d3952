"""Shared helpers: synthetic audio written with soundfile (WAV, FLAC, OGG, AU, MP3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, *, sr: int = 22050, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) / 1.3).astype(np.float32)
    if channels == 1:
        return mono
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1)


@pytest.fixture
def write_audio(tmp_path: Path):
    def write(name: str, data: np.ndarray, sr: int = 22050, **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data, sr, **kwargs)
        return path

    return write


def pytest_terminal_summary(terminalreporter) -> None:
    """The reliability table, when the session ran tests that inject faults (tests/reliability.py)."""
    from tests.reliability import LEDGER, table

    if LEDGER:
        terminalreporter.write_sep("=", "reliability: faults injected, and what a reader found after them")
        terminalreporter.write_line(table(LEDGER))
