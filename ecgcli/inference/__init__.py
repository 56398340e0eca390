"""Inference on new records with a trained checkpoint: predict, explain, export (and score with
onnxruntime). Knows nothing of training."""
