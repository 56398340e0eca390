"""``ecg multiseed``: configurations x label fractions x seeds, with the statistics tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ecgcli.cli.options import Options, config_options, settings_options
from ecgcli.experiments.spec import GRID_OWN
from ecgcli.train.config import SupervisedConfig

DEFAULT_SEEDS_TEXT = ",".join(str(s) for s in range(42, 133, 10))


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def tests_table(doc: dict[str, Any]):
    """Each configuration against the baseline: paired t p-value first, then the others."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.compare import _title, short_names, with_notes
    from ecgcli.cli.formats import fmt_fraction
    from ecgcli.experiments.results import HEADLINE
    from ecgcli.scoring.names import SHORT

    comparisons = doc.get("comparisons") or []
    several = len({c["label_fraction"] for c in comparisons}) > 1
    names, notes = short_names([c["config"] for c in comparisons])
    table = Table(
        title=_title(f"Paired comparisons with the baseline {doc['grid']['baseline']} (test fold 10)"),
        title_justify="left",
        caption=Text(
            with_notes(
                "p = two-sided paired t-test on the per-seed test scores of the seeds both configurations "
                "finished (pairs): the test this table reports. Wilcoxon signed-rank and Welch's unpaired "
                "t for reference. Δ = configuration − baseline: mean and its 95% t-CI; "
                "d_z = mean Δ / sd Δ.",
                notes,
            )
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    cols = ["configuration", *(["labels"] if several else []), "metric", "pairs", "Δ [95% CI]"]
    cols += ["p paired t", "p Wilcoxon", "p Welch", "d_z"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("configuration", "metric") else "right", no_wrap=True)
    for c in comparisons:
        for i, metric in enumerate(HEADLINE):
            t = c["tests"].get(metric) or {}
            diff = "—" if t.get("mean_diff") is None else f"{t['mean_diff']:+.4f}"
            if t.get("diff_ci_low") is not None:
                diff += f" [{t['diff_ci_low']:+.4f}, {t['diff_ci_high']:+.4f}]"
            p = t.get("t_p")
            labels = [fmt_fraction(c["label_fraction"]) if i == 0 else ""] if several else []
            table.add_row(
                Text(names[c["config"]]) if i == 0 else "",
                *labels,
                SHORT[metric],
                str(c["n_pairs"]),
                diff,
                Text(_p(p), style="bold" if p is not None and p < 0.05 else ""),
                _p(t.get("wilcoxon_p")),
                _p(t.get("welch_p")),
                "—" if t.get("cohens_dz") is None else f"{t['cohens_dz']:+.2f}",
                end_section=i == len(HEADLINE) - 1,
            )
    return table


def bootstrap_table(doc: dict[str, Any]):
    """Per run: test AUROC with its bootstrap 95% CI over test records (seeds x configurations);
    None when there are more than four (configuration, fraction) columns."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.compare import _title, short_names, with_notes
    from ecgcli.cli.formats import fmt_fraction

    groups = [r for r in doc["results"] if r["runs"]]
    names, notes = short_names([r["config"] for r in groups])
    several = len({r["label_fraction"] for r in groups}) > 1
    if not groups or len(groups) > 4:
        return None
    table = Table(
        title=_title("Per run: test AUROC [bootstrap 95% CI over test records]"),
        title_justify="left",
        caption=Text(
            with_notes("percentile interval of 1000 bootstrap replicates of the test records, seed 0", notes)
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("seed", justify="right")
    for r in groups:
        head = names[r["config"]] + (f" @{fmt_fraction(r['label_fraction'])}" if several else "")
        table.add_column(Text(head), justify="center", no_wrap=True)
    for seed in doc["grid"]["seeds"]:
        cells = []
        for r in groups:
            run = next((x for x in r["runs"] if x["seed"] == seed), None)
            b = (run or {}).get("bootstrap_auroc") or {}
            if run is None or b.get("estimate") is None:
                cells.append("—")
            elif b.get("ci_low") is None:
                cells.append(f"{b['estimate']:.4f}")
            else:
                cells.append(f"{b['estimate']:.4f} [{b['ci_low']:.4f}, {b['ci_high']:.4f}]")
        table.add_row(str(seed), *cells)
    return table


@config_options(SupervisedConfig, exclude=GRID_OWN)
@settings_options
def multiseed(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            help=(
                "A configuration (repeatable): LOSS+STRATEGY, finetune:NAME=PATH or probe:NAME=PATH; "
                "the baselines finetune:random, probe:random (a random encoder), features:logreg or "
                "features:forest (handcrafted features); optionally with \\[key=value,...] "
                "\\[default: bce+standard and focal+oversample]."
            ),
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = DEFAULT_SEEDS_TEXT,
    label_fraction: Annotated[
        float | None,
        typer.Option("--label-fraction", help="Fraction of labelled folds 1-8 to train on \\[default: 0.1]."),
    ] = None,
    label_fractions: Annotated[
        str | None,
        typer.Option("--label-fractions", help="Sweep label efficiency, e.g. 0.01,0.05,0.1,0.25,1.0."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Configuration the others are tested against \\[default: first supervised]."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder \\[default: <runs dir>/multiseed].")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=0, help="Runs trained in parallel processes; 0 = one per GPU.")
    ] = 1,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Train only the K-th of N shares of the grid (K/N, balanced by expected cost): N "
            "processes or cluster jobs (e.g. a Slurm array) share one --out.",
        ),
    ] = None,
    collect: Annotated[
        bool,
        typer.Option(
            "--collect",
            help="Train nothing: rebuild multiseed.json from the runs finished so far in --out (the "
            "grid is read from there; no other flag is needed).",
        ),
    ] = False,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE for any other training option (repeatable), e.g. width=32."),
    ] = None,
) -> None:
    """Train configurations over many seeds; report means, t-CIs and paired tests.

    A seed fixes the labelled subset, so configurations with the same seed are paired. Each
    run is an ordinary run directory under --out; multiseed.json holds every score and the
    statistics. Rerunning the same command resumes: finished runs are never trained again,
    and the grid may grow (more seeds, configurations, fractions) but not shrink.

    Configurations: LOSS+STRATEGY (supervised, e.g. focal+oversample), finetune:NAME=PATH (an
    encoder from `ecg train ssl`, fully fine-tuned), probe:NAME=PATH (frozen encoder), each
    optionally followed by \\[key=value,...] for any training option (see --set). Baselines:
    finetune:random and probe:random (the same recipes from a random --encoder), features:logreg
    and features:forest (handcrafted features, scikit-learn; keys logreg_c, forest_trees,
    forest_min_leaf).

    Example: ecg multiseed --seeds 42,52,62 --epochs 2 --config focal+oversample --config
    finetune:simclr=runs/simclr/model.safetensors
    """
    from ecgcli.cli.compare import print_comparison, print_table, table_console
    from ecgcli.errors import ConfigError
    from ecgcli.experiments.compare import compare
    from ecgcli.experiments.grid import build_grid
    from ecgcli.experiments.inputs import read_multiseed
    from ecgcli.experiments.results import results_path
    from ecgcli.experiments.runner import resolve_jobs, run_multiseed
    from ecgcli.experiments.shards import Shard
    from ecgcli.experiments.spec import parse_fractions, parse_seeds

    share = Shard.parse(shard) if shard is not None else None
    seed_list = parse_seeds(seeds)
    if label_fractions is not None and label_fraction is not None:
        raise ConfigError("give --label-fraction or --label-fractions, not both")
    if label_fractions is not None:
        fractions = parse_fractions(label_fractions)
    else:  # None alone is unset: 0 is a value, refused by the checks
        fractions = (0.1 if label_fraction is None else label_fraction,)
    common = {
        **settings,
        **options,
    }
    out_dir = out if out is not None else Path(common["runs_dir"]) / "multiseed"
    if collect:  # the grid that trained the runs in out_dir, whatever the flags say now
        from ecgcli.experiments.collect import grid_on_disk

        grid = grid_on_disk(out_dir)
    else:
        grid = build_grid(
            config, seed_list, fractions, common, sets or [], out_dir, baseline, given=options.given
        )
    n_jobs = resolve_jobs(jobs, common["device"])
    from ecgcli.cli.render import MultiseedView

    with MultiseedView() as view:
        doc = run_multiseed(grid, view, n_jobs, share, train=not collect)
    stdout = table_console()
    cells = doc["cells"]
    if not doc["complete"]:
        stdout.print(
            f"{cells['finished']} of {cells['total']} runs finished so far"
            + (" (the other shards train the rest)" if share else "")
            + f"; rerun with --collect to rebuild {results_path(out_dir)} later",
            soft_wrap=True,
            markup=False,
        )
    if not any(r["runs"] for r in doc["results"] if r["config"] == grid.baseline):
        stdout.print(f"results: {results_path(out_dir)}", soft_wrap=True, markup=False)
        return  # no table without a finished run of the baseline
    comp = compare(read_multiseed(results_path(out_dir)), grid.baseline)
    print_comparison(comp, stdout)
    if doc["comparisons"]:
        stdout.print()
        print_table(stdout, tests_table(doc))
    table = bootstrap_table(doc)
    stdout.print()
    if table is not None:
        print_table(stdout, table)
    else:
        stdout.print("per-run bootstrap CIs of test AUROC: multiseed.json, results[].runs[].bootstrap_auroc")
    stdout.print(f"results: {results_path(out_dir)}", soft_wrap=True, markup=False)
    stdout.print(
        f"next: ecg compare {out_dir} --per-class --plots {out_dir / 'plots'}", soft_wrap=True, markup=False
    )
