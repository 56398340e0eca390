"""``ecg finetune``: a pretrained encoder plus a linear head, trained on the labelled fraction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecgcli.cli.common import DataRoot, Device, SamplingRate, Workers
from ecgcli.cli.train import (
    BatchSize,
    Epochs,
    GradClip,
    LabelFraction,
    Loss,
    Lr,
    Name,
    NProc,
    Out,
    Patience,
    Resume,
    RunDirOpt,
    Schedule,
    Seed,
    SelectMetric,
    SignalLength,
    Strategy,
    WeightDecay,
    command_options,
    run_classifier,
)


def finetune(
    ctx: typer.Context,
    ssl_checkpoint: Annotated[
        Path | None,
        typer.Option("--ssl-checkpoint", help="Encoder checkpoint from `ecg train ssl` (.safetensors)."),
    ] = None,
    freeze_encoder: Annotated[
        bool, typer.Option("--freeze-encoder", help="Linear probe: train only the head.")
    ] = False,
    encoder_lr: Annotated[
        float | None, typer.Option("--encoder-lr", help="Full fine-tuning with this smaller encoder rate.")
    ] = None,
    width: Annotated[
        int | None, typer.Option("--width", help="Expected encoder width (checked against the checkpoint).")
    ] = None,
    data_root: DataRoot = None,
    epochs: Epochs = 30,
    batch_size: BatchSize = 64,
    lr: Lr = 1e-3,
    label_fraction: LabelFraction = 0.1,
    signal_length: SignalLength = 1000,
    seed: Seed = 42,
    out: Out = None,
    loss: Loss = "focal",
    balance_strategy: Strategy = "oversample",
    device: Device = None,
    workers: Workers = None,
    run_dir: RunDirOpt = None,
    patience: Patience = None,
    resume: Resume = None,
    select_metric: SelectMetric = "f1",
    schedule: Schedule = "none",
    weight_decay: WeightDecay = 0.0,
    grad_clip: GradClip = 0.0,
    sampling_rate: SamplingRate = None,
    name: Name = None,
    nproc: NProc = None,
) -> None:
    """Fine-tune (or linearly probe) a pretrained encoder on the labelled fraction.

    Same protocol and outputs as `ecg train supervised`: best epoch on fold 9, thresholds tuned
    on fold 9, scores on fold 10.

    Example: ecg finetune --ssl-checkpoint runs/simclr-s42/model.safetensors --encoder-lr 1e-4
    """
    overrides = command_options(locals(), "resume", "nproc")  # first: before any local name
    from ecgcli.errors import ConfigError

    if ssl_checkpoint is None and resume is None:
        raise ConfigError("--ssl-checkpoint is required (an encoder from `ecg train ssl`)")
    mode = "linear probe" if freeze_encoder else "fine-tuning"
    run_classifier(ctx, overrides, resume, f"{mode} of {ssl_checkpoint} (seed {seed})", nproc=nproc)
