"""Models: encoders (registry by name), heads, and the classifier that joins them."""

from ecgcli.models.classifier import ECGClassifier
from ecgcli.models.encoders import ECGEncoder1DCNN, build_encoder, encoder_names, register_encoder
from ecgcli.models.heads import HEADS, build_head

__all__ = [
    "HEADS",
    "ECGClassifier",
    "ECGEncoder1DCNN",
    "build_encoder",
    "build_head",
    "encoder_names",
    "register_encoder",
]
