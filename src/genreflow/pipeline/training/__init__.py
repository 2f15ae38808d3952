"""Training: labelled tracks and splits from the store, patch streams, fitting, evaluation."""
