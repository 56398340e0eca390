"""``ecg finetune``: a pretrained encoder plus a linear head, trained on the labelled fraction."""

from __future__ import annotations

from typing import Any

import typer

from ecgcli.cli.options import Options, config_options, settings_options
from ecgcli.cli.train import NNodes, NodeRank, NProc, RdzvEndpoint, Resume, run_config, run_training
from ecgcli.train.config import SupervisedConfig


# The encoder is the checkpoint's: its architecture is read from there, and its width is only
# checked (no default: any width fits unless one is asked for).
@config_options(SupervisedConfig, exclude=("encoder",), defaults={"width": None})
@settings_options
def finetune(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    resume: Resume = None,
    nproc: NProc = None,
    nnodes: NNodes = 1,
    node_rank: NodeRank = 0,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Fine-tune (or linearly probe) a pretrained encoder on the labelled fraction.

    Same protocol and outputs as `ecg train supervised`: best epoch on fold 9, thresholds tuned
    on fold 9, scores on fold 10.

    Example: ecg finetune --ssl-checkpoint runs/simclr-s42/model.safetensors --encoder-lr 1e-4
    """
    from ecgcli.cli.train import resume_epochs
    from ecgcli.errors import ConfigError

    resume_epochs(ctx, resume)  # an option given with --resume is refused before anything else
    if options["ssl_checkpoint"] is None and resume is None:
        raise ConfigError("--ssl-checkpoint is required (an encoder from `ecg train ssl`)")
    mode = "linear probe" if options["freeze_encoder"] else "fine-tuning"
    title = f"{mode} of {options['ssl_checkpoint']} (seed {options['seed']})"
    run_training(
        run_config(SupervisedConfig, settings, options),
        resume,
        title,
        nproc,
        (nnodes, node_rank, rdzv_endpoint),
        ctx=ctx,
        kind="finetune",
    )
