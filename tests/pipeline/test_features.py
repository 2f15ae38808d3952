import dataclasses

import librosa
import numpy as np
import pytest

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.features import MEL128, MUSICNN96, STFT512, WAVELET, get_feature_set, parse_feature_sets
from genreflow.pipeline.features.mel import mel_filterbank
from tests.conftest import tone


@pytest.mark.parametrize("seconds", [5.0, 0.05])  # a clip, and one shorter than the FFT
def test_mel128_equals_librosa_reference(seconds):
    rng = np.random.default_rng(3)
    n = int(seconds * 22050)
    y = (tone(seconds)[:n] + 0.05 * rng.standard_normal(n)).astype(np.float32)
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128), ref=1.0, top_db=None
    )
    out = MEL128.compute(y, sr=22050)
    assert out.dtype == np.float32 and out.shape == (128, MEL128.n_frames(y.shape[0]))
    np.testing.assert_allclose(out, reference, atol=1e-3)


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(22050, 2048, 128), (16000, 512, 96)])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels):
    ours = mel_filterbank(sr, n_fft, n_mels)
    np.testing.assert_allclose(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), rtol=1e-5, atol=1e-8)


def test_musicnn96_is_musicnns_input_in_float32_even_when_loud():
    y = np.clip(tone(3, sr=16000, amp=1.0) * 8, -1, 1)  # a square-ish loud signal: float16 would overflow
    power = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect")
    out = MUSICNN96.compute(y, sr=16000)
    assert np.isfinite(out).all() and out.shape == (96, 1 + y.shape[0] // 256)
    np.testing.assert_allclose(out, np.log10(1 + 10000 * power.astype(np.float64)), rtol=1e-4, atol=1e-4)
    with np.errstate(over="ignore"):  # the float16 trap we avoid: bins overflow to inf
        assert np.isinf(np.log10(10000 * power.astype(np.float16) + 1)).any()


def test_wavelet_scalogram_locates_tones_in_frequency_and_time():
    sr = 22050
    freqs = WAVELET.frequencies
    target = 50
    y = np.zeros(10 * sr, np.float32)
    y[3 * sr : 6 * sr] = 0.5 * np.sin(2 * np.pi * freqs[target] * np.arange(3 * sr) / sr)
    out = WAVELET.compute(y, sr=sr)
    assert out.shape == (64, WAVELET.n_frames(y.shape[0]))
    middle = out[:, int(4.5 * sr / 512)]
    assert int(middle.argmax()) == target
    assert middle[target] == pytest.approx(20 * np.log10(0.5), abs=0.5)  # amplitude reads as dB
    assert out[target, int(1 * sr / 512)] < -60 and out[target, int(8 * sr / 512)] < -60  # silent outside


def test_configs_hash_their_parameters_and_names_resolve():
    assert MEL128.config_hash != dataclasses.replace(MEL128, n_mels=64).config_hash
    assert MEL128.config_hash == dataclasses.replace(MEL128).config_hash
    assert WAVELET.config()["kind"] == "morlet_cwt"
    assert [fs.name for fs in parse_feature_sets("wavelet, mel128,wavelet")] == ["wavelet", "mel128"]
    with pytest.raises(ParameterError, match="known: mel128"):
        get_feature_set("mfcc")
    with pytest.raises(ParameterError, match="expects audio at 22050"):
        MEL128.compute(tone(1, sr=16000), sr=16000)


@pytest.mark.parametrize("fs", [MEL128, MUSICNN96, STFT512, WAVELET], ids=lambda fs: fs.name)
@pytest.mark.parametrize("audio_s", [0.01, 1.3, 3.97, 4.0, 5.5])  # tiny, short, audio reaching the end, full, longer
def test_a_window_holds_the_same_values_as_the_padded_signal(fs, audio_s):
    """Skipping the frames of padding changes no stored value (the window is 4 s here)."""
    rng = np.random.default_rng(5)
    samples = (0.3 * rng.standard_normal(round(audio_s * fs.sample_rate))).astype(np.float32)
    size = 4 * fs.sample_rate
    padded = np.pad(samples, (0, max(0, size - samples.shape[0])))[:size]
    np.testing.assert_array_equal(
        fs.compute_window(samples, sr=fs.sample_rate, size=size), fs.compute(padded, sr=fs.sample_rate)
    )


def test_a_short_clip_costs_what_it_holds(monkeypatch):
    """A 15-s clip in a 30-s window transforms half the frames of a 30-s one."""
    import scipy.fft

    transformed = []
    rfft = scipy.fft.rfft
    monkeypatch.setattr(scipy.fft, "rfft", lambda x, *a, **k: transformed.append(x.shape[0]) or rfft(x, *a, **k))
    size = 30 * MEL128.sample_rate
    for seconds in (30, 15):
        transformed.clear()
        MEL128.compute_window(np.ones(seconds * MEL128.sample_rate, np.float32), sr=MEL128.sample_rate, size=size)
        frames = sum(transformed)
        assert frames == MEL128.n_frames(size) if seconds == 30 else frames <= MEL128.n_frames(size) // 2 + 3


def test_stft512_is_librosas_log_power_stft_up_to_its_cut_off():
    rng = np.random.default_rng(4)
    y = (tone(3.0) + 0.05 * rng.standard_normal(3 * 22050)).astype(np.float32)
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, pad_mode="constant")) ** 2
    out = STFT512.compute(y, sr=22050)
    assert out.shape == (512, MEL128.n_frames(y.shape[0]))  # mel128's frame grid: the same networks read it
    np.testing.assert_allclose(out, librosa.power_to_db(power[:512], ref=1.0, top_db=None), atol=2e-3)
