from genreflow.bench.clips import music_patches
from genreflow.bench.train import throughput


def test_bench_measures_port_against_tf1_on_the_same_patches():
    inputs = music_patches(64)
    assert inputs["musicnn96"].shape == (64, 96, 187) and inputs["mel128"].shape == (64, 128, 130)
    row = throughput("musicnn-msd", inputs)
    assert set(row) == {"train", "inference", "tf1", "ratio", "ratio_low", "ratio_high"}
    assert all(value > 0 for value in row.values()) and row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    assert set(throughput("cnn2", inputs)) == {"train", "inference"}
