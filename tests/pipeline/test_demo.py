import soundfile as sf

from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.demo import STYLES, make_demo_catalogue


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
