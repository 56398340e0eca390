"""``ecg train supervised`` and ``ecg train ssl``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecgcli.cli.common import DataRoot, Device, SamplingRate, Workers, run_settings

if TYPE_CHECKING:
    from ecgcli.train.distributed import Distributed

app = typer.Typer(
    help="Train the encoder: supervised baseline or self-supervised pretraining.",
    no_args_is_help=True,
)

# Options shared by `train supervised` and `finetune` (the reference study's names and defaults).
Epochs = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size",
        help="Records per step, in all processes together: with N processes (--nproc, torchrun) "
        "each trains on batch-size / N.",
    ),
]
NProc = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="Train with N processes (DistributedDataParallel; gloo on CPU, nccl on CUDA): runs this "
        "command again under torchrun. Same as `torchrun --nproc_per_node N -m ecgcli ...`.",
    ),
]
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


def command_options(values: dict[str, Any], *drop: str) -> dict[str, Any]:
    """A command's own option values (from ``locals()``) as configuration fields: ``ctx`` and
    the names in ``drop`` removed, paths as strings (configurations are saved as JSON)."""
    skip = {"ctx", *drop}
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if k not in skip}


def settings_fields(ctx: typer.Context, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_settings`, with the command's setting flags taken out of ``options``."""
    return run_settings(
        ctx, **{k: options.pop(k) for k in ("data_root", "sampling_rate", "workers", "device")}
    )


def relaunch(nproc: int | None, device: str, batch_size: int | None, nodes: Any = None) -> None:
    """``--nproc N`` (N > 1) or ``--nnodes M`` (M > 1): this command again under torchrun;
    exits with its code. ``nodes`` is a :class:`ecgcli.train.launch.Nodes`."""
    if (nproc is None or nproc == 1) and (nodes is None or nodes.nnodes == 1):
        return
    import sys

    from ecgcli.train.launch import launch

    raise typer.Exit(launch(nproc or 1, device, sys.argv, batch_size, nodes))


@contextmanager
def distributed(device: str) -> Iterator[Distributed]:
    """This process's place in a torchrun run (one process: a plain run).

    An error every rank raised is printed by rank 0 only; the other ranks exit quietly.
    """
    from ecgcli.errors import EcgError
    from ecgcli.train.distributed import session

    try:
        with session(device) as dist:
            yield dist
    except EcgError as exc:
        if getattr(exc, "quiet", False):
            raise typer.Exit(exc.exit_code) from None
        raise


def training_view(title: str, dist: Distributed) -> Any:
    """Rank 0 draws the live table; the other ranks report nothing."""
    from ecgcli.cli.render import TrainingView
    from ecgcli.events import ignore

    return TrainingView(title) if dist.is_main else nullcontext(ignore)


def run_classifier(
    ctx: typer.Context,
    overrides: dict[str, Any],
    resume: Path | None,
    title: str,
    init_encoder: Any = None,
    nproc: int | None = None,
) -> None:
    """Shared by `train supervised` and `finetune`: settings, live view, final report."""
    from ecgcli.cli.render import print_evaluation
    from ecgcli.train.supervised import SupervisedConfig, resume_classifier, train_classifier

    common = settings_fields(ctx, overrides)
    relaunch(nproc, common["device"], None if resume else overrides["batch_size"])
    with distributed(common["device"]) as dist, training_view(title, dist) as view:
        if resume is not None:
            view(_note(f"resuming {resume} with its saved configuration"))
            result = resume_classifier(resume, view, dist=dist)
        else:
            cfg = SupervisedConfig(**common, **overrides)
            result = train_classifier(cfg, view, init_encoder=init_encoder, dist=dist)
    if not dist.is_main:
        return
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
    nproc: NProc = None,
) -> None:
    """Train the 1D-CNN and a linear head from scratch on the labelled fraction.

    Selects the best epoch on fold 9, tunes per-class thresholds on fold 9, reports fold 10.

    Example: ecg train supervised --epochs 30 --loss focal --balance-strategy oversample --seed 42
    """
    overrides = command_options(locals(), "resume", "nproc")
    run_classifier(
        ctx, overrides, resume, f"supervised ({loss}, {balance_strategy}, seed {seed})", nproc=nproc
    )


@app.command()
def ssl(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", help="simclr or byol.")] = "simclr",
    data_root: DataRoot = None,
    epochs: Epochs = 20,
    batch_size: BatchSize = 256,
    lr: Lr = 1e-3,
    temperature: Annotated[float, typer.Option("--temperature", help="NT-Xent temperature (SimCLR).")] = 0.07,
    projection_dim: Annotated[int, typer.Option("--projection-dim", help="Projection output size.")] = 128,
    hidden_dim: Annotated[int, typer.Option("--hidden-dim", help="Projection/predictor hidden size.")] = 2048,
    momentum_tau: Annotated[
        float, typer.Option("--momentum-tau", help="BYOL target EMA start, cosine-increased to 1.")
    ] = 0.99,
    signal_length: SignalLength = 1000,
    seed: Seed = 42,
    out: Out = None,
    device: Device = None,
    workers: Workers = None,
    resume: Resume = None,
    probe_every: Annotated[
        int, typer.Option("--probe-every", help="Linear probe on fold 9 every k epochs (0 = never).")
    ] = 1,
    no_aug: Annotated[
        list[str] | None,
        typer.Option("--no-aug", help="Switch an augmentation off (repeatable), for ablations."),
    ] = None,
    schedule: Schedule = "none",
    weight_decay: WeightDecay = 0.0,
    run_dir: RunDirOpt = None,
    sampling_rate: SamplingRate = None,
    name: Name = None,
    nproc: NProc = None,
) -> None:
    """Pretrain the encoder without labels (SimCLR or BYOL) on every record of folds 1-8.

    The live table shows the SSL loss and, every --probe-every epochs, a linear probe's fold-9
    macro AUROC and F1 (logistic regression on frozen features of the labelled fraction).

    Example: ecg train ssl --method simclr --epochs 20 --batch-size 256 --out runs/simclr.safetensors
    """
    options = command_options(locals(), "resume", "nproc")  # first: before any local name
    from ecgcli.cli.render import out as stdout
    from ecgcli.train.ssl import SSLConfig, resume_ssl, train_ssl

    options["no_aug"] = list(no_aug or [])
    common = settings_fields(ctx, options)
    relaunch(nproc, common["device"], None if resume else batch_size)
    title = f"{method} pretraining (seed {seed})"
    with distributed(common["device"]) as dist, training_view(title, dist) as view:
        if resume is not None:
            view(_note(f"resuming {resume} with its saved configuration"))
            run_path, metrics = resume_ssl(resume, view, dist=dist)
        else:
            cfg = SSLConfig(**common, **options)
            run_path, metrics = train_ssl(cfg, view, dist=dist)
    if not dist.is_main:
        return
    probe, init = metrics.get("final_probe") or {}, metrics.get("probe_at_init") or {}
    if probe:
        line = f"final linear probe (fold 9): AUROC {probe['probe_auroc']:.4f}  F1 {probe['probe_f1']:.4f}"
        if init:
            line += f"   (untrained encoder: AUROC {init['probe_auroc']:.4f}  F1 {init['probe_f1']:.4f})"
        stdout.print(line)
    share = metrics["timing"]["augment_share"]
    stdout.print(
        f"augmentations: {', '.join(metrics['augmentations'])}; "
        f"{100 * sum(share) / len(share):.1f}% of training time spent augmenting"
    )
    stdout.print(f"run directory: {run_path}\nencoder checkpoint: {run_path / 'model.safetensors'}")
    if out:
        stdout.print(f"also written: {out}")
    stdout.print(f"next: ecg finetune --ssl-checkpoint {run_path / 'model.safetensors'}")
