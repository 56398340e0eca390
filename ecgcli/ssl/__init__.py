"""Self-supervised pretraining objectives for the ECG encoder (registry: :mod:`ecgcli.ssl.methods`).

Each method is a small ``nn.Module`` wrapping any encoder ``(B, 12, T) -> (B, feature_dim)``;
``forward(v1, v2)`` takes two augmented views of the same records (see
:mod:`ecgcli.ssl.augment`), or ``forward(x)`` the records themselves (CPC, masked modelling),
and returns the scalar loss; ``.encoder`` is what fine-tuning keeps.
The losses and heads are exposed separately so they can be tested and reused on their own.
"""

from ecgcli.ssl.byol import BYOL, PredictorHead, byol_loss, cosine_tau, ema_update
from ecgcli.ssl.cpc import CPC, cpc_infonce
from ecgcli.ssl.masked import Masked, masked_mse
from ecgcli.ssl.methods import SSLMethod, check_ssl_method, register_ssl_method, ssl_method, ssl_method_names
from ecgcli.ssl.simclr import ProjectionHead, SimCLR, nt_xent_loss

__all__ = [
    "BYOL",
    "CPC",
    "Masked",
    "PredictorHead",
    "ProjectionHead",
    "SSLMethod",
    "SimCLR",
    "byol_loss",
    "check_ssl_method",
    "cosine_tau",
    "cpc_infonce",
    "ema_update",
    "masked_mse",
    "nt_xent_loss",
    "register_ssl_method",
    "ssl_method",
    "ssl_method_names",
]
