"""What ``make-demo`` writes unless told: the difficulty, tracks per genre, track length and seed.

Light on purpose (no numpy): the CLI reads these defaults to show them in ``--help``.
"""

from __future__ import annotations

# easy: 7 clearly distinct genres (every model scores 100 %: it shows the pipeline works);
# hard: 10 genres in overlapping pairs, parts borrowed across genres, noise and level changes, short
# clips (it tells recipes apart; a sanity check that a change helps, not a target)
DIFFICULTIES = ("easy", "hard")
DEFAULT_DIFFICULTY = "easy"
CLIP_SECONDS = {"easy": 12.0, "hard": 6.0}
DEFAULT_PER_CLASS = 20
DEFAULT_SEED = 0
