"""The report's t-SNE map of test tracks, down to the smallest test splits a tiny catalogue gives."""

from __future__ import annotations

import numpy as np
import pytest

from genreflow.pipeline.training.evaluate import _embedding_png


@pytest.mark.parametrize("tracks", [1, 2, 3, 4, 12])
def test_the_embedding_map_is_drawn_for_any_test_split(tmp_path, tracks):
    rng = np.random.default_rng(0)
    path = _embedding_png(tmp_path / "map.png", rng.standard_normal((tracks, 8)), np.arange(tracks) % 2, ("a", "b"))
    assert path.read_bytes().startswith(b"\x89PNG")
