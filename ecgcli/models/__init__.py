"""Models: encoders (registry by name), heads, and the classifier that joins them."""

from ecgcli.models.classifier import ECGClassifier
from ecgcli.models.encoders import ECGEncoder1DCNN, build_encoder, encoder_names

__all__ = ["ECGClassifier", "ECGEncoder1DCNN", "build_encoder", "encoder_names"]
