"""Benchmarks: genreflow's flows against what a user would run instead, timed in one run each.

Not flows: they compose the public pieces (the flows' runners, the pipeline) and print ratios.
"""
