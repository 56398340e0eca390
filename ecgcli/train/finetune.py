"""Fine-tuning = supervised training whose encoder starts from an SSL checkpoint.

The run itself is :func:`ecgcli.train.supervised.train_classifier`; this module loads and
checks the pretrained encoder. The encoder's own input normalisation (fitted on the
pretraining records) is kept, so it sees inputs exactly as it did during pretraining.
``--freeze-encoder`` trains only the linear head (a linear probe, BatchNorm statistics frozen
too); ``--encoder-lr`` fine-tunes the whole network with a smaller rate for the encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ecgcli import LEADS
from ecgcli.data.leads import describe, parse_leads
from ecgcli.data.normalize import LeadNorm
from ecgcli.errors import CheckpointError
from ecgcli.storage.checkpoint import load_encoder

if TYPE_CHECKING:
    from ecgcli.train.config import SupervisedConfig


def encoder_path(value: Any) -> Path:
    """The checkpoint file ``--ssl-checkpoint`` names: a path, or a shipped encoder's verified file."""
    from ecgcli import pretrained

    return pretrained.resolve(str(value), kind="encoder")


def pretrained_encoder(cfg: SupervisedConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder of ``cfg.ssl_checkpoint`` (a file, or the name of a shipped encoder such as
    ``byol-resnet1d_wang-ptbxl``), checked against the run it is to be used in."""
    path = encoder_path(cfg.ssl_checkpoint)

    def fits_this_run(meta: dict[str, Any]) -> None:
        args = (meta.get("architecture") or {}).get("encoder_args", {})
        leads = list(parse_leads(cfg.leads))
        if args.get("in_ch", len(LEADS)) != len(meta.get("leads", LEADS)):
            raise CheckpointError(
                f"{path}: the encoder takes {args.get('in_ch')} input leads but its sidecar lists "
                f"{len(meta.get('leads', LEADS))}; the checkpoint is inconsistent"
            )
        if args.get("in_ch", len(LEADS)) != len(leads) or meta.get("leads", list(LEADS)) != leads:
            raise CheckpointError(
                f"{path}: the encoder was pretrained on {describe(meta.get('leads', LEADS))}; "
                f"this run uses {describe(leads)} (--leads must match the encoder's)"
            )
        if cfg.width and "width" in args and args["width"] != cfg.width:
            raise CheckpointError(
                f"{path}: the encoder has width {args['width']}, the run asks for --width {cfg.width}"
            )
        if meta.get("sampling_rate", cfg.sampling_rate) != cfg.sampling_rate:
            raise CheckpointError(
                f"{path}: the encoder was pretrained at {meta['sampling_rate']} Hz, "
                f"this run uses {cfg.sampling_rate} Hz"
            )

    encoder, meta = load_encoder(path, fits_this_run)
    info = {
        "encoder": meta["architecture"]["encoder"],
        "normalisation": LeadNorm.from_dict(meta["normalisation"]),
        "source": {
            "path": str(path),
            "method": (meta.get("ssl") or {}).get("method"),
            "cache_id": (meta.get("data") or {}).get("cache_id"),
            "probe": meta.get("metrics"),
        },
    }
    return encoder, info
