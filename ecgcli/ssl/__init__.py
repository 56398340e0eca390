"""Self-supervised pretraining objectives for the ECG encoder: SimCLR and BYOL.

Each method is a small ``nn.Module`` wrapping any encoder ``(B, 12, T) -> (B, feature_dim)``;
``forward(v1, v2)`` takes two augmented views of the same records (see
:mod:`ecgcli.ssl.augment`) and returns the scalar loss, and ``.encoder`` is what fine-tuning keeps.
The losses and heads are exposed separately so they can be tested and reused on their own.
"""

from ecgcli.ssl.byol import BYOL, PredictorHead, byol_loss, cosine_tau, ema_update
from ecgcli.ssl.simclr import ProjectionHead, SimCLR, nt_xent_loss

__all__ = [
    "BYOL",
    "PredictorHead",
    "ProjectionHead",
    "SimCLR",
    "byol_loss",
    "cosine_tau",
    "ema_update",
    "nt_xent_loss",
]
