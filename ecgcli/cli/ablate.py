"""``ecg ablate augmentations``: pretrain with each SSL augmentation left out, fine-tune every
encoder on paired seeds, and report each augmentation's paired effect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ecgcli.cli.options import Options, config_options, settings_options
from ecgcli.experiments.spec import GRID_OWN
from ecgcli.train.config import SupervisedConfig

app = typer.Typer(help="Ablation studies: which part of the recipe earns its place.", no_args_is_help=True)


@app.command("augmentations")
@config_options(SupervisedConfig, exclude=(*GRID_OWN, "encoder", "width", "ssl_checkpoint"))
@settings_options
def augmentations(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    method: Annotated[str, typer.Option("--method", help="SSL objective (see `ecg train ssl`).")] = "simclr",
    only: Annotated[
        str | None,
        typer.Option(
            "--augmentations", help="Comma-separated augmentations to ablate \\[default: every one]."
        ),
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated fine-tuning seeds.")] = "42,52,62",
    label_fraction: Annotated[
        float, typer.Option("--label-fraction", help="Fraction of labelled folds 1-8 to fine-tune on.")
    ] = 0.1,
    ssl_epochs: Annotated[int, typer.Option("--ssl-epochs", help="Pretraining epochs per encoder.")] = 20,
    ssl_batch_size: Annotated[int, typer.Option("--ssl-batch-size", help="Pretraining batch size.")] = 256,
    ssl_seed: Annotated[int, typer.Option("--ssl-seed", help="Seed of every pretraining.")] = 42,
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder architecture.")] = "cnn1d",
    width: Annotated[
        int | None, typer.Option("--width", help="Encoder width \\[default: the encoder's own].")
    ] = None,
    ssl_set: Annotated[
        list[str] | None,
        typer.Option(
            "--ssl-set",
            help="Any other `ecg train ssl` option as KEY=VALUE (repeatable), e.g. temperature=0.1.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder \\[default: <runs dir>/ablation].")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=0, help="Fine-tunes trained in parallel processes; 0 = one per GPU.")
    ] = 1,
    show: Annotated[
        bool, typer.Option("--show", help="Only print the table of what has finished; train nothing.")
    ] = False,
) -> None:
    """Pretrain one encoder with every augmentation (all), one with each left out in turn
    (no-AUG) and one with none; fine-tune each on the same seeds (a multiseed grid with
    finetune:all as baseline); report each augmentation's paired effect on fold-10 macro AUROC
    (all minus no-AUG, 95% t-CI, paired t p-value), largest first.

    Training options (--epochs, --batch-size, --lr, ...) are the fine-tunes'; pretraining
    has its own (--ssl-epochs, --ssl-batch-size, --encoder, --width, and --ssl-set KEY=VALUE for
    any other). Rerunning the same command trains only what has not finished.

    Example: ecg ablate augmentations --augmentations jitter,bandpass --seeds 42,52,62
    --ssl-epochs 20 --epochs 30
    """
    from ecgcli.cli.render import AblationView
    from ecgcli.cli.render import out as stdout
    from ecgcli.experiments.ablation import (
        load_report,
        parse_augmentations,
        parse_ssl_sets,
        plan_ablation,
        run_ablation,
        to_markdown,
    )
    from ecgcli.experiments.runner import resolve_jobs
    from ecgcli.experiments.spec import parse_fractions, parse_seeds

    ablated = parse_augmentations(only)
    (fraction,) = parse_fractions(str(label_fraction))
    ssl = {
        **settings,
        "method": method,
        "epochs": ssl_epochs,
        "batch_size": ssl_batch_size,
        "seed": ssl_seed,
        "encoder": encoder,
        "width": width,
        "probe_fraction": fraction,
        "task": options["task"],  # the live probe scores the fine-tunes' task
        "precision": options["precision"],
        **parse_ssl_sets(ssl_set or []),
    }
    out_dir = out if out is not None else Path(settings["runs_dir"]) / "ablation"
    plan = plan_ablation(
        ablated, parse_seeds(seeds), fraction, ssl, {**settings, **options}, out_dir, options.given
    )
    if show:
        report = load_report(plan)
    else:
        with AblationView() as view:
            report = run_ablation(plan, view, resolve_jobs(jobs, settings["device"]))
    stdout.print(to_markdown(report), soft_wrap=True, markup=False)
    stdout.print(f"report: {out_dir / 'ablation.md'}", soft_wrap=True, markup=False)
