"""What an ingest run stores unless told: feature sets, clip window, channel views, shard size.

Light on purpose (no numpy): the CLI reads these defaults to show them in ``--help``.
"""

from __future__ import annotations

# What the default model (``musicnn-msd-linear`` reads musicnn96), the zero-shot taggers (musicnn96)
# and the seeds' spectrogram CNNs (mel128) need, so `ingest` then `train` and `score` with their
# defaults fit together. A test checks the default model's inputs stay inside this set.
DEFAULT_FEATURE_SETS = ("mel128", "musicnn96")
DEFAULT_SHARD_SIZE = 128  # tracks per task: the unit of fan-out, retry and Zarr writes
# Tracks allocated, decoded and committed together: what a killed run can lose, and what bounds the
# rows a run holds (a night's tracks are one batch; a backfill of millions, hundreds).
DEFAULT_BATCH_TRACKS = 10_000
# Runs with at most this many tracks to decode are decoded in the flow's own process (two shards on
# threads) instead of starting local worker processes, whose start-up costs more than they save.
IN_PROCESS_TRACKS = 64
DEFAULT_WINDOW_S = 30.0  # the centred window stored per track (UrbanSound8K's adapter asks for 4 s)
DEFAULT_MIN_DURATION_S = 1.0  # shorter tracks fail rather than being stored as mostly padding
DEFAULT_CHANNEL_VIEWS = ("mid",)  # rows per track; seed 002's split stores mid, left, right
DATASETS = ("gtzan", "fma", "us8k", "folder", "unlabelled")  # the catalogue layouts genreflow reads
FMA_SUBSETS = ("small", "medium", "large")  # nested: medium holds small, large holds both
DEFAULT_DATASET = "auto"  # recognise GTZAN, FMA, UrbanSound8K by their files, else folder-per-label or unlabelled
DEFAULT_FMA_SUBSET = "small"
