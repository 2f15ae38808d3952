"""Per-track embeddings a catalogue can search: their nearest-neighbour index and "more like this" queries."""
