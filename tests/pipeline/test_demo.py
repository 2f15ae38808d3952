import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.demo import HARD_STYLES, STYLES, genres, make_demo_catalogue, synthesize
from genreflow.pipeline.demo_config import CLIP_SECONDS
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.features import MEL128


def test_demo_catalogue_is_deterministic_mixed_and_has_broken_files(tmp_path):
    first = make_demo_catalogue(tmp_path / "a", per_class=2, seconds=2.0, seed=3)
    second = make_demo_catalogue(tmp_path / "b", per_class=2, seconds=2.0, seed=3)
    assert [p.name for p in first] == [p.name for p in second]
    lossless = [(a, b) for a, b in zip(first, second, strict=True) if a.suffix in (".wav", ".flac")]
    assert lossless and all(a.read_bytes() == b.read_bytes() for a, b in lossless)

    catalogue = scan_catalogue(str(tmp_path / "a"))
    assert catalogue["dataset"].unique().tolist() == ["gtzan"]
    assert set(catalogue["label"]) == set(STYLES) and len(STYLES) >= 6
    assert {p.suffix for p in first} == {".wav", ".mp3", ".flac"}
    playable = [sf.info(p) for p in first[: 2 * len(STYLES)]]
    assert {i.samplerate for i in playable} >= {16000, 22050, 44100} and {i.channels for i in playable} == {1, 2}
    assert sum(p.stat().st_size == 0 for p in first) == 1  # plus a truncated WAV and a text file


def test_hard_catalogue_has_more_genres_in_shorter_clips_and_is_deterministic(tmp_path):
    first = make_demo_catalogue(tmp_path / "a", difficulty="hard", per_class=1, seed=3)
    again = make_demo_catalogue(tmp_path / "b", difficulty="hard", per_class=1, seed=3)
    lossless = [(a, b) for a, b in zip(first, again, strict=True) if a.suffix in (".wav", ".flac") and a.stat().st_size]
    assert lossless and all(a.read_bytes() == b.read_bytes() for a, b in lossless)
    one, other = (synthesize("rock", seconds=1.0, rng=np.random.default_rng(s), difficulty="hard") for s in (1, 2))
    assert not np.array_equal(one, other)

    catalogue = scan_catalogue(str(tmp_path / "a"))
    assert set(catalogue["label"]) == set(HARD_STYLES) and len(HARD_STYLES) > len(STYLES)
    assert len(catalogue) == len(HARD_STYLES) + 3  # one track a genre and the three broken files
    assert sorted(catalogue["track_id"])[:2] == ["gtzan:blues.00000", "gtzan:blues.00001"]  # truncated: blues.00001
    tracks = first[: len(HARD_STYLES)]
    assert [p.parent.name for p in tracks] == list(HARD_STYLES)
    durations = [sf.info(p).duration for p in tracks]
    assert CLIP_SECONDS["hard"] < CLIP_SECONDS["easy"]
    assert durations == pytest.approx([CLIP_SECONDS["hard"]] * len(tracks), abs=0.06)  # MP3 frames pad a little


def _nearest_centroid_accuracy(difficulty: str, *, per_class: int, seconds: float) -> float:
    """Two-fold nearest-centroid accuracy on per-band mel means and deviations: a cheap proxy of how
    separable the genres are."""
    features, labels = [], []
    for g, genre in enumerate(genres(difficulty)):
        for i in range(per_class):
            audio = synthesize(genre, seconds=seconds, rng=np.random.default_rng([0, g, i]), difficulty=difficulty)
            mel = MEL128.compute(audio, sr=MEL128.sample_rate)
            features.append(np.concatenate([mel.mean(axis=1), mel.std(axis=1)]))
            labels.append(g)
    x, y = np.array(features), np.array(labels)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    first_half = np.arange(len(y)) % per_class < per_class // 2
    scores = []
    for train in (first_half, ~first_half):
        centroids = np.stack([x[train & (y == c)].mean(axis=0) for c in range(y.max() + 1)])
        nearest = ((x[~train][:, None] - centroids) ** 2).sum(axis=-1).argmin(axis=1)
        scores.append(float((nearest == y[~train]).mean()))
    return float(np.mean(scores))


def test_hard_genres_are_much_less_separable_than_easy_ones():
    easy = _nearest_centroid_accuracy("easy", per_class=4, seconds=4.0)
    hard = _nearest_centroid_accuracy("hard", per_class=4, seconds=4.0)
    assert easy >= 0.6 and hard <= easy - 0.3, (easy, hard)


def test_unknown_difficulty_or_genre_is_one_clear_error(tmp_path):
    with pytest.raises(ParameterError, match="unknown demo difficulty 'medium'; known: easy, hard"):
        make_demo_catalogue(tmp_path, difficulty="medium")
    with pytest.raises(ParameterError, match="no genre 'country' in the easy demo"):
        synthesize("country", seconds=1.0, rng=np.random.default_rng(0))
