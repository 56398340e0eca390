"""``ecg train supervised`` and ``ecg train ssl``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ecgcli.cli.common import DataRoot, Device, SamplingRate, Workers, not_yet, settings_from

app = typer.Typer(
    help="Train the encoder: supervised baseline or self-supervised pretraining.",
    no_args_is_help=True,
)

# Options shared by `train supervised` and `finetune` (the reference study's names and defaults).
Epochs = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Records per batch (one process).")]
Lr = Annotated[float, typer.Option("--lr", help="Adam learning rate (the head's, when fine-tuning).")]
LabelFraction = Annotated[
    float, typer.Option("--label-fraction", help="Fraction of labelled folds 1-8 to train on, (0, 1].")
]
SignalLength = Annotated[
    int,
    typer.Option("--signal-length", help="Samples per input window; shorter than a record = random crops."),
]
Seed = Annotated[int, typer.Option("--seed", help="Fixes the labelled subset, initialisation and shuffling.")]
Out = Annotated[
    Path | None, typer.Option("--out", help="Also write the best checkpoint here (.safetensors).")
]
Loss = Annotated[str, typer.Option("--loss", help="focal, bce, weighted or class_balanced.")]
Strategy = Annotated[str, typer.Option("--balance-strategy", help="oversample, stratified or standard.")]
RunDirOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="Run directory [default: <runs dir>/<name>].")
]
Patience = Annotated[
    int | None, typer.Option("--patience", help="Stop after this many epochs without improvement.")
]
Resume = Annotated[
    Path | None, typer.Option("--resume", help="Continue an interrupted run (its saved configuration).")
]
SelectMetric = Annotated[
    str, typer.Option("--select-metric", help="Validation metric that picks the best epoch: f1 or auroc.")
]
Schedule = Annotated[str, typer.Option("--schedule", help="Learning-rate schedule: none or cosine.")]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="Adam weight decay.")]
GradClip = Annotated[float, typer.Option("--grad-clip", help="Clip the gradient norm (0 = off).")]
Name = Annotated[str | None, typer.Option("--name", help="Run name under the runs directory.")]


def run_classifier(
    ctx: typer.Context, overrides: dict[str, Any], resume: Path | None, title: str, init_encoder: Any = None
) -> None:
    """Shared by `train supervised` and `finetune`: settings, live view, final report."""
    from ecgcli.cli.render import TrainingView, print_evaluation
    from ecgcli.train.supervised import SupervisedConfig, resume_classifier, train_classifier

    s = settings_from(
        ctx,
        data_root=overrides.pop("data_root"),
        sampling_rate=overrides.pop("sampling_rate"),
        workers=overrides.pop("workers"),
        device=overrides.pop("device"),
    )
    with TrainingView(title) as view:
        if resume is not None:
            view(_note(f"resuming {resume} with its saved configuration"))
            result = resume_classifier(resume, view)
        else:
            cfg = SupervisedConfig(
                data_root=str(s.data_root),
                cache_dir=str(s.cache_dir),
                runs_dir=str(s.runs_dir),
                sampling_rate=s.sampling_rate,
                workers=s.resolved_workers(),
                device=s.device,
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()},
            )
            result = train_classifier(cfg, view, init_encoder=init_encoder)
    extra = (("also written", overrides["out"]),) if overrides.get("out") else ()
    print_evaluation(result.evaluation, result.run_dir, result.checkpoint, extra)


def _note(text: str):
    from ecgcli.events import Message

    return Message(text)


@app.command()
def supervised(
    ctx: typer.Context,
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
) -> None:
    """Train the 1D-CNN and a linear head from scratch on the labelled fraction.

    Selects the best epoch on fold 9, tunes per-class thresholds on fold 9, reports fold 10.

    Example: ecg train supervised --epochs 30 --loss focal --balance-strategy oversample --seed 42
    """
    overrides = {
        "data_root": data_root,
        "sampling_rate": sampling_rate,
        "workers": workers,
        "device": device,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "label_fraction": label_fraction,
        "signal_length": signal_length,
        "seed": seed,
        "out": out,
        "loss": loss,
        "balance_strategy": balance_strategy,
        "run_dir": run_dir,
        "patience": patience,
        "select_metric": select_metric,
        "schedule": schedule,
        "weight_decay": weight_decay,
        "grad_clip": grad_clip,
        "name": name,
    }
    run_classifier(ctx, overrides, resume, f"supervised ({loss}, {balance_strategy}, seed {seed})")


@app.command()
def ssl() -> None:
    """Pretrain the encoder without labels (SimCLR or BYOL)."""
    not_yet("train ssl")
