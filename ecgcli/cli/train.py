"""``ecg train supervised`` and ``ecg train ssl``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecgcli.cli.options import Options, config_options, settings_options
from ecgcli.train.config import RunConfig, SSLConfig, SupervisedConfig

if TYPE_CHECKING:
    from ecgcli.train.distributed import Distributed

app = typer.Typer(
    help="Train the encoder: supervised baseline or self-supervised pretraining.",
    no_args_is_help=True,
)

NProc = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="Train with N processes (DistributedDataParallel; gloo on CPU, nccl on CUDA): runs this "
        "command again under torchrun. Same as `torchrun --nproc_per_node N -m ecgcli ...`.",
    ),
]
NNodes = Annotated[
    int,
    typer.Option(
        "--nnodes",
        help="Machines in the run: each runs this same command with its own --node-rank and "
        "--nproc processes; they meet at --rdzv-endpoint (torchrun's c10d rendezvous).",
    ),
]
NodeRank = Annotated[int, typer.Option("--node-rank", help="This machine's number among --nnodes, from 0.")]
RdzvEndpoint = Annotated[
    str | None,
    typer.Option(
        "--rdzv-endpoint",
        help="HOST:PORT on node 0 that every node can reach, where the nodes meet (with --nnodes).",
    ),
]
Resume = Annotated[
    Path | None, typer.Option("--resume", help="Continue an interrupted run (its saved configuration).")
]
#: What may be given with --resume: where it runs, and --epochs (to train longer).
RESUME_TAKES = frozenset({"resume", "nproc", "nnodes", "node_rank", "rdzv_endpoint", "epochs"})


def resume_epochs(ctx: typer.Context, resume: Path | None) -> int | None:
    """With ``--resume``: the ``--epochs`` typed with it (None: the saved number). Any other
    option typed with it is refused in one line naming it: the run continues with its saved
    configuration, so the option would be silently ignored (issue 31 D)."""
    if resume is None:
        return None
    from ecgcli.errors import ConfigError

    def typed(name: str) -> bool:  # by name: typer may bring its own copy of click's enum
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    ignored = [p.opts[0] for p in ctx.command.params if p.name not in RESUME_TAKES and typed(p.name or "")]
    if ignored:
        raise ConfigError(
            f"{', '.join(ignored)} cannot be given with --resume: {resume} continues with its saved "
            "configuration (only --epochs may be given, to train to that many epochs)"
        )
    return ctx.params.get("epochs") if typed("epochs") else None


#: Options of `finetune` only (the encoder comes from its checkpoint there). `train supervised`
#: keeps --freeze-encoder and --encoder-lr: the probe:random and finetune:random baselines.
FINETUNE_ONLY = ("ssl_checkpoint",)


def relaunch(
    nproc: int | None,
    device: str,
    batch_size: int | None,
    nodes: tuple[int, int, str | None] = (1, 0, None),
) -> None:
    """``--nproc N`` (N > 1) or any node option: this command again under torchrun; exits with
    its code. ``nodes`` is ``(--nnodes, --node-rank, --rdzv-endpoint)``."""
    if (nproc is None or nproc == 1) and nodes == (1, 0, None):
        return
    import sys

    from ecgcli.train.launch import Nodes, launch

    raise typer.Exit(launch(nproc or 1, device, sys.argv, batch_size, Nodes(*nodes)))


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
        if exc.quiet:
            from ecgcli.cli.app import stop_exit_code
            from ecgcli.errors import Interrupted

            raise typer.Exit(stop_exit_code() if isinstance(exc, Interrupted) else exc.exit_code) from None
        raise


def training_view(title: str, dist: Distributed) -> Any:
    """Rank 0 draws the live table; the other ranks report nothing."""
    from ecgcli.cli.render import TrainingView
    from ecgcli.events import ignore

    return TrainingView(title) if dist.is_main else nullcontext(ignore)


def run_config(cls: type[RunConfig], settings: dict[str, Any], options: Options) -> Any:
    """The run's configuration: settings, options, and the recipe for what was not given."""
    return cls.from_options({**settings, **options}, options.given)


def run_training(
    cfg: RunConfig,
    resume: Path | None,
    title: str,
    nproc: int | None = None,
    nodes: tuple[int, int, str | None] = (1, 0, None),
    *,
    ctx: typer.Context,
    kind: str,
) -> None:
    """Every training command (``kind``: supervised, finetune or ssl): live view, run (or
    resume), final report."""
    from ecgcli.cli.render import print_evaluation, print_pretraining

    epochs = resume_epochs(ctx, resume)
    relaunch(nproc, cfg.device, None if resume else cfg.batch_size, nodes)
    with distributed(cfg.device) as dist, training_view(title, dist) as view:
        if resume is not None:
            view(_note(_resuming(resume, epochs)))
            result = _resumed(kind)(resume, view, dist=dist, epochs=epochs)
        else:
            result = _trainer(kind)(cfg, view, dist=dist)
    if not dist.is_main:
        return
    if kind == "ssl":
        print_pretraining(result.run_dir, result.metrics, cfg.out)
    else:
        extra = (("also written", cfg.out),) if cfg.out else ()
        print_evaluation(result.evaluation, result.run_dir, result.checkpoint, extra)


def _trainer(kind: str) -> Any:
    if kind == "ssl":
        from ecgcli.train.ssl import train_ssl

        return train_ssl
    from ecgcli.train.supervised import train_classifier

    return train_classifier


def _resumed(kind: str) -> Any:
    if kind == "ssl":
        from ecgcli.train.ssl import resume_ssl

        return resume_ssl
    from functools import partial

    from ecgcli.train.supervised import resume_classifier

    return partial(resume_classifier, kind=kind)


def _resuming(resume: Path, epochs: int | None) -> str:
    to = f", to epoch {epochs} (--epochs)" if epochs is not None else ""
    return f"resuming {resume} with its saved configuration{to}"


def _note(text: str):
    from ecgcli.events import Message

    return Message(text)


@app.command()
@config_options(SupervisedConfig, exclude=FINETUNE_ONLY)
@settings_options
def supervised(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    resume: Resume = None,
    nproc: NProc = None,
    nnodes: NNodes = 1,
    node_rank: NodeRank = 0,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Train an encoder and a linear head from scratch on the labelled fraction.

    Selects the best epoch on fold 9, tunes per-class thresholds on fold 9, reports fold 10.

    Example: ecg train supervised --epochs 30 --loss focal --balance-strategy oversample --seed 42
    """
    cfg = run_config(SupervisedConfig, settings, options)
    recipe = "" if cfg.recipe == "reference" else f"{cfg.recipe} recipe, "
    title = f"supervised ({recipe}{cfg.loss}, {cfg.balance_strategy}, seed {cfg.seed})"
    run_training(cfg, resume, title, nproc, (nnodes, node_rank, rdzv_endpoint), ctx=ctx, kind="supervised")


@app.command()
@config_options(SSLConfig)
@settings_options
def ssl(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    resume: Resume = None,
    nproc: NProc = None,
    nnodes: NNodes = 1,
    node_rank: NodeRank = 0,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Pretrain the encoder without labels (SimCLR, BYOL, CPC or masked) on every record of folds 1-8.

    The live table shows the SSL loss and, every --probe-every epochs, a linear probe's fold-9
    macro AUROC and F1 (logistic regression on frozen features of the labelled fraction).

    Example: ecg train ssl --method simclr --epochs 20 --batch-size 256 --out runs/simclr.safetensors
    """
    cfg = run_config(SSLConfig, settings, options)
    title = f"{cfg.method} pretraining (seed {cfg.seed})"
    run_training(cfg, resume, title, nproc, (nnodes, node_rank, rdzv_endpoint), ctx=ctx, kind="ssl")
