import io

import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.audio import ClipWindow, decode_clip, fit_length, resample
from genreflow.pipeline.errors import DecodeError, ParameterError
from genreflow.pipeline.extract import TrackRef, load_track
from tests.conftest import tone

WINDOW = ClipWindow(seconds=30.0, min_seconds=1.0)


@pytest.mark.parametrize(
    ("name", "sr", "subtype", "channels"),
    [
        ("a.wav", 8000, "PCM_U8", 1),
        ("b.wav", 44100, "PCM_16", 2),
        ("c.wav", 96000, "PCM_24", 6),
        ("d.wav", 48000, "PCM_32", 2),
        ("e.wav", 32000, "FLOAT", 1),
        ("f.flac", 44100, "PCM_16", 2),
        ("g.ogg", 22050, "VORBIS", 1),
        ("h.au", 16000, "PCM_16", 1),
        ("i.mp3", 44100, None, 2),
        ("ünïcode name with spaces.wav", 22050, "PCM_16", 1),
    ],
)
def test_decodes_formats_rates_depths_and_channels(write_audio, name, sr, subtype, channels):
    path = write_audio(name, tone(3, sr=sr, channels=channels), sr, subtype=subtype)
    clip = decode_clip(str(path), window=WINDOW)
    assert clip.sample_rate == sr
    assert clip.channels == channels
    assert clip.duration_s == pytest.approx(3, abs=0.1)
    assert clip.samples.dtype == np.float32 and np.isfinite(clip.samples).all()
    assert 0.2 < np.abs(clip.view("mid")).max() <= 1.0


def test_window_is_centred_and_views_split_channels(write_audio):
    sr = 8000
    left = np.linspace(-0.5, 0.5, 10 * sr, dtype=np.float32)
    stereo = np.stack([left, -left], axis=1)
    clip = decode_clip(str(write_audio("s.wav", stereo, sr, subtype="FLOAT")), window=ClipWindow(seconds=4))
    assert clip.window_start_s == pytest.approx(3.0)
    assert clip.samples.shape == (2, 4 * sr)
    np.testing.assert_allclose(clip.view("left"), left[3 * sr : 7 * sr])
    np.testing.assert_allclose(clip.view("right"), -left[3 * sr : 7 * sr])
    np.testing.assert_allclose(clip.view("mid"), 0, atol=1e-7)
    with pytest.raises(ParameterError, match="unknown channel view"):
        clip.view("centre")


def test_hour_long_file_decodes_only_the_window(write_audio):
    sr = 8000
    path = write_audio("long.wav", np.tile(tone(1, sr=sr), 3600), sr, subtype="PCM_16")
    clip = decode_clip(str(path), window=WINDOW)
    assert clip.duration_s == pytest.approx(3600)
    assert clip.samples.shape == (1, 30 * sr)
    assert clip.window_start_s == pytest.approx(1785)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros(22050 * 2, np.float32), "silent"),
        (tone(0.4), "too short"),
        (np.full(22050 * 2, np.nan, np.float32), "non-finite"),
        (np.where(np.arange(22050 * 2) == 500, -np.inf, tone(2)).astype(np.float32), "non-finite"),
        (np.where(np.arange(22050 * 2) == 500, np.nan, tone(2)).astype(np.float32), "non-finite"),
    ],
)
def test_unusable_audio_is_rejected_with_reason(write_audio, data, match):
    path = write_audio("bad.wav", data, subtype="FLOAT")
    with pytest.raises(DecodeError, match=match):
        decode_clip(str(path), window=WINDOW)


def test_truncated_wav_and_flac_are_reported(write_audio):
    for name, subtype in (("t.wav", "PCM_16"), ("t.flac", "PCM_16")):
        path = write_audio(name, tone(6), subtype=subtype)
        data = path.read_bytes()
        with pytest.raises(DecodeError, match="truncated"):
            decode_clip(io.BytesIO(data[: len(data) // 3]), window=WINDOW)


def test_fallback_decoder_reads_what_libsndfile_cannot(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "x.m4a"
    sr = 44100
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr)
        samples = tone(2, sr=sr).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    clip = decode_clip(str(path), window=WINDOW)
    assert clip.sample_rate == sr and clip.duration_s == pytest.approx(2, abs=0.1)
    assert np.abs(clip.samples).max() > 0.2


def test_load_track_turns_every_failure_into_a_reason(tmp_path, write_audio):
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 50)
    good = write_audio("good.flac", tone(2))
    same = tmp_path / "copy of good.flac"
    same.write_bytes(good.read_bytes())

    def load(path):
        ref = TrackRef(
            uri=str(path), dataset="folder", size_bytes=path.stat().st_size if path.exists() else 0, source_version="1"
        )
        return load_track(ref, window=WINDOW)

    assert load(tmp_path / "empty.mp3")[2] == "empty file (0 bytes)"
    assert load(tmp_path / "text.wav")[2].startswith("not audio")
    assert "not found" in load(tmp_path / "gone.wav")[2]
    good_hash, clip, error = load(good)
    assert error is None and clip is not None
    assert load(same)[0] == good_hash  # same content, same hash under another name


def test_resample_and_fit_length():
    y = tone(1, sr=44100)
    assert resample(y, orig_sr=44100, target_sr=16000).shape == (16000,)
    assert fit_length(y, size=100).shape == (100,)
    assert fit_length(y[:10], size=20)[10:].tolist() == [0.0] * 10
    with pytest.raises(ParameterError):
        ClipWindow(seconds=2, min_seconds=3)


def test_decoded_mp3_matches_soundfile_reference(write_audio):
    path = write_audio("ref.mp3", tone(3, sr=44100), 44100)
    reference, _ = sf.read(path, dtype="float32", always_2d=True)
    clip = decode_clip(str(path), window=WINDOW)
    np.testing.assert_array_equal(clip.samples, reference.T)
