"""Inference on new records with a trained checkpoint: predict. Knows nothing of training."""
