"""ecg multiseed end to end and ecg compare: tables, formats, deltas, refusals, plots."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.experiments.compare import compare, delta_pct
from ecgcli.experiments.inputs import Method, load_inputs
from ecgcli.scoring.stats import summarize

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


# Tiny real training: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def grid(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real `ecg multiseed` run: two supervised configurations and a probe, two seeds, 1 epoch."""
    from ecgcli.models import build_encoder
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

    root = tmp_path_factory.mktemp("grid")
    encoder = build_encoder("cnn1d", in_ch=12, width=16)
    ckpt = save_checkpoint(
        root / "rand" / "model.safetensors",
        encoder,
        checkpoint_meta(
            "encoder",
            architecture={
                "encoder": "cnn1d",
                "encoder_args": encoder.config(),
                "feature_dim": encoder.out_dim,
            },
            leads=list(LEADS),
            sampling_rate=100,
            normalisation={"mean": [0.0] * 12, "std": [1.0] * 12},
        ),
    )
    out = root / "ms"
    args = ["multiseed", "--data-root", str(synth_root), "--seeds", "42,52", "--epochs", "1"]
    args += ["--label-fraction", "1.0", "--set", "width=16", "--batch-size", "32", "--device", "cpu"]
    args += ["--workers", "1", "--out", str(out), "-c", "bce+standard", "-c", "focal+oversample"]
    args += ["-c", f"probe:rand={ckpt}[lr=0.01]"]
    env = {"ECG_CACHE_DIR": str(session_cache), "COLUMNS": "200"}
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_torch_thread
    try:
        result = runner.invoke(app, args, env=env)
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return {"out": out, "stdout": result.stdout, "stderr": result.stderr, "args": args, "env": env}


def invoke(args: list[str]):
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def one_error_line(result, pattern: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_multiseed_prints_the_tables(grid: dict) -> None:
    out, text = grid["out"], grid["stdout"]
    assert "Comparison on the test fold (10), 100% of the labels" in text
    for name in ("bce+standard", "focal+oversample", "probe:rand[lr=0.01]"):
        assert name in text
    assert re.search(r"0\.\d{3} ± 0\.\d{3}", text) and re.search(r"\[0\.\d{3}, ", text)
    assert "Paired comparisons with the baseline bce+standard" in text
    assert "p = two-sided paired t-test" in text and "p paired t" in text and "p Wilcoxon" in text
    assert "bootstrap 95% CI over test records" in text
    assert "6 runs, 0 already finished" in grid["stderr"]
    doc = json.loads((out / "multiseed.json").read_text())
    assert [r["config"] for r in doc["results"]] == [
        "bce+standard",
        "focal+oversample",
        "probe:rand[lr=0.01]",
    ]
    assert all(r["n"] == 2 for r in doc["results"]) and doc["complete"]
    for sub in ("bce_standard", "focal_oversample", "probe_rand_lr=0.01"):
        for seed in (42, 52):
            run = out / sub / "lf1" / f"seed{seed}"
            assert (run / "metrics.json").is_file() and (run / "predictions.npz").is_file()
    probe = json.loads((out / "probe_rand_lr=0.01" / "lf1" / "seed42" / "config.json").read_text())
    assert (
        probe["freeze_encoder"]
        and probe["lr"] == 0.01
        and probe["ssl_checkpoint"].endswith("model.safetensors")
    )
    # running it again trains nothing and says so; leaving part of the grid out is refused
    again = runner.invoke(app, grid["args"], env=grid["env"])
    assert again.exit_code == 0, again.output
    assert "6 runs, 6 already finished, 0 to train" in again.stderr
    line = one_error_line(runner.invoke(app, grid["args"][:-4], env=grid["env"]), "holds a larger grid")
    assert "focal+oversample, probe:rand[lr=0.01]" in line


def test_compare_formats(grid: dict, tmp_path: Path) -> None:
    out = grid["out"]
    doc = json.loads((out / "multiseed.json").read_text())
    summary = {r["config"]: r["summary"]["test"] for r in doc["results"]}

    md = invoke(["compare", str(out), "--format", "markdown"])
    assert md.exit_code == 0, md.output
    lines = md.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    assert "AUROC" in lines[header] and "Δ F1" in lines[header]
    assert re.fullmatch(r"\|[-:|]+\|", lines[header + 1])
    first = lines[header + 2 : lines.index("", header)]
    assert len(first) == 3 and all(line.startswith("|") for line in first)
    paired = lines[lines.index("| method | labels | pairs | Δ AUROC [95% CI], p | Δ AUPRC [95% CI], p |") :]
    assert [line.split(" | ")[0] for line in paired[2:4]] == ["| focal+oversample", "| probe:rand[lr=0.01]"]
    assert "**" in md.stdout  # the best value per column is bold

    rows = list(csv.DictReader(io.StringIO(invoke(["compare", str(out), "--format", "csv"]).stdout)))
    assert [r["method"] for r in rows] == ["bce+standard", "focal+oversample", "probe:rand[lr=0.01]"]
    base = summary["bce+standard"]
    for r in rows:
        s = summary[r["method"]]
        assert float(r["auroc_mean"]) == pytest.approx(s["auroc"]["mean"])
        assert float(r["f1_ci_low"]) == pytest.approx(s["f1"]["ci_low"])
        if r["method"] == "bce+standard":
            assert r["delta_f1_pct"] == "" and r["baseline"] == "True"
        else:
            want = 100 * (s["f1"]["mean"] - base["f1"]["mean"]) / base["f1"]["mean"]
            assert float(r["delta_f1_pct"]) == pytest.approx(want)

    data = json.loads(invoke(["compare", str(out), "--format", "json", "--per-class"]).stdout)
    assert data["format"] == "ecgcli-compare" and data["baseline"] == "bce+standard"
    assert [m["n"] for m in data["methods"]] == [2, 2, 2]
    assert set(data["methods"][1]["per_class"]) == set(SUPERCLASSES)
    assert data["methods"][0]["delta_pct"] == {"f1": None, "auroc": None}

    per_class = list(
        csv.DictReader(io.StringIO(invoke(["compare", str(out), "--per-class", "--format", "csv"]).stdout))
    )
    assert len(per_class) == 3 + 3 * 5 and {r["class"] for r in per_class} == {"all", *SUPERCLASSES}

    table = invoke(["compare", str(out), "--per-class"])
    assert table.exit_code == 0 and "Per class" in table.stdout and "Δ AUROC" in table.stdout

    for fmt in ("table", "markdown", "csv", "json"):
        target = tmp_path / f"cmp.{fmt}"
        res = invoke(["compare", str(out), "--format", fmt, "--output", str(target)])
        assert res.exit_code == 0 and res.stdout == "" and target.stat().st_size > 0
        assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary file
    json.loads((tmp_path / "cmp.json").read_text())
    assert "bce+standard" in (tmp_path / "cmp.table").read_text()

    rebased = json.loads(
        invoke(["compare", str(out), "--format", "json", "--baseline", "focal+oversample"]).stdout
    )
    assert rebased["methods"][1]["baseline"] and rebased["methods"][0]["delta_pct"]["f1"] is not None
    one_error_line(invoke(["compare", str(out), "--baseline", "nope"]), "--baseline 'nope'.*bce\\+standard")


def test_single_runs_group_into_seeds(grid: dict) -> None:
    out = grid["out"]
    focal = [out / "focal_oversample" / "lf1" / f"seed{s}" for s in (42, 52)]
    bce = out / "bce_standard" / "lf1" / "seed42"
    methods = load_inputs([*focal, bce])
    assert [(m.name, m.n, m.seeds) for m in methods] == [
        ("focal+oversample", 2, [42, 52]),
        ("bce+standard", 1, [42]),
    ]
    doc = json.loads((out / "multiseed.json").read_text())
    ms = next(r for r in doc["results"] if r["config"] == "focal+oversample")["summary"]["test"]["f1"]
    assert methods[0].summary("f1").to_dict() == pytest.approx(ms)  # same runs, same numbers
    comp = compare(methods)
    assert comp.baseline == "focal+oversample"  # the first supervised input
    # a run directory given next to the multiseed file it belongs to: names are told apart
    names = [m.name for m in load_inputs([out, bce])]
    assert "bce+standard [ms]" in names and "bce+standard [seed42]" in names
    res = invoke(["compare", str(focal[0]), str(focal[0])])
    one_error_line(res, "same configuration and seed 42")


def _copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_mismatched_inputs_are_refused(grid: dict, tmp_path: Path) -> None:
    out = grid["out"]
    run = out / "bce_standard" / "lf1" / "seed42"

    swapped = _copy_run(run, tmp_path / "swapped")
    side = json.loads((swapped / "model.json").read_text())
    side["class_names"] = list(reversed(side["class_names"]))
    (swapped / "model.json").write_text(json.dumps(side))
    line = one_error_line(invoke(["compare", str(out), str(swapped)]), "class order differs")
    assert str(swapped) in line and "NORM,MI,STTC,HYP,CD" in line and "CD,HYP,STTC,MI,NORM" in line

    other = _copy_run(run, tmp_path / "other-test")
    with np.load(other / "predictions.npz") as npz:
        arrays = dict(npz)
    arrays["test_ecg_id"] = arrays["test_ecg_id"] + 100_000
    np.savez(other / "predictions.npz", **arrays)
    line = one_error_line(invoke(["compare", str(run), str(other)]), "test sets differ")
    assert str(other) in line and str(run) in line

    doc = json.loads((out / "multiseed.json").read_text())
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "multiseed.json").write_text(json.dumps({**doc, "version": 2}))
    one_error_line(invoke(["compare", str(tmp_path / "v2")]), "version 2 is not supported")
    half = tmp_path / "half.json"
    half.write_text((out / "multiseed.json").read_text()[:500])
    one_error_line(invoke(["compare", str(half)]), "half-written")
    (tmp_path / "empty").mkdir()
    one_error_line(invoke(["compare", str(tmp_path / "empty")]), "neither a run directory")
    one_error_line(invoke(["compare", str(tmp_path / "missing")]), "not found")
    one_error_line(invoke(["compare", str(out), "--format", "xml"]), "--format must be one of")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    (unfinished / "metrics.json").write_text("{}")
    one_error_line(invoke(["compare", str(unfinished)]), "no test scores")


def test_plots_are_pngs(grid: dict, tmp_path: Path) -> None:
    res = invoke(["compare", str(grid["out"]), "--plots", str(tmp_path / "figs"), "--format", "csv"])
    assert res.exit_code == 0, res.output
    png = tmp_path / "figs" / "roc_test.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert not (tmp_path / "figs" / "label_efficiency.png").exists()  # one label fraction: no curve
    reliability = tmp_path / "figs" / "reliability_test.png"
    assert reliability.read_bytes()[:8] == PNG and reliability.stat().st_size > 10_000


def test_calibration_columns(grid: dict) -> None:
    """Test-fold macro ECE and Brier score per method, from each run's metrics.json, in every
    format; the best (lowest) is marked."""
    import csv
    import io
    import json

    res = invoke(["compare", str(grid["out"]), "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = [r for r in csv.DictReader(io.StringIO(res.stdout)) if r["class"] == "all"]
    assert rows
    for r in rows:
        assert 0 < float(r["ece_mean"]) < 1 and 0 < float(r["brier_mean"]) < 1
    md = invoke(["compare", str(grid["out"]), "--format", "markdown"]).stdout
    assert "| ECE | Brier |" in md and "lower is better" in md
    doc = json.loads(invoke(["compare", str(grid["out"]), "--format", "json"]).stdout)
    eces = [m["metrics"]["ece"]["mean"] for m in doc["methods"]]
    best = [m for m in doc["methods"] if "ece" in m["best"]]
    if len(doc["methods"]) > 1:
        assert best and best[0]["metrics"]["ece"]["mean"] == min(eces)
    table = invoke(["compare", str(grid["out"])]).stdout
    assert "ECE" in table and "Brier" in table


def sweep_methods() -> list[Method]:
    rng = np.random.default_rng(0)
    methods = []
    for name, kind, gain in (("bce+standard", "supervised", 0.0), ("finetune:simclr", "finetune", 0.03)):
        for lf in (0.01, 0.1, 1.0):
            scores = [
                {
                    "auroc": 0.7 + 0.05 * np.log10(lf) + gain + e,
                    "f1": 0.5 + gain + e,
                    "sensitivity": 0.7,
                    "specificity": 0.8,
                }
                for e in rng.normal(0, 0.01, 3)
            ]
            methods.append(
                Method(name, kind, lf, "multiseed", "x", list(SUPERCLASSES), {"n": 10}, [1, 2, 3], scores)
            )
    return methods


def test_deltas_best_flags_and_label_efficiency_plot(tmp_path: Path) -> None:
    from ecgcli.experiments.plots import write_plots

    methods = sweep_methods()
    comp = compare(methods)
    assert comp.baseline == "bce+standard" and comp.fractions == [0.01, 0.1, 1.0]
    for row in comp.rows:
        base = next(
            r for r in comp.rows if r.is_baseline and r.method.label_fraction == row.method.label_fraction
        )
        if row is base:
            assert row.delta_pct == {"f1": None, "auroc": None}
        else:
            f1 = summarize([s["f1"] for s in row.method.scores]).mean
            b = summarize([s["f1"] for s in base.method.scores]).mean
            assert row.delta_pct["f1"] == pytest.approx(100 * (f1 - b) / b)
            assert {"auroc", "f1"} <= row.best  # the better method wins within its label fraction
    assert delta_pct(0.55, 0.5) == pytest.approx(10.0) and delta_pct(1.0, 0.0) is None
    written = write_plots(methods, tmp_path)  # no predictions: only the label-efficiency curve
    assert written == [tmp_path / "label_efficiency.png"]
    assert written[0].read_bytes()[:8] == PNG and written[0].stat().st_size > 10_000


def test_missing_matplotlib_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, grid: dict, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from ecgcli.experiments.plots import pyplot

    with pytest.raises(ConfigError, match='pip install "ecgcli\\[plots\\]"'):
        pyplot()
    line = one_error_line(invoke(["compare", str(grid["out"]), "--plots", str(tmp_path)]), "matplotlib")
    assert 'pip install "ecgcli[plots]"' in line


def test_per_class_header_says_f1_not_macro_f1() -> None:
    from ecgcli.cli.formats import class_header, headline_header

    assert "macro F1" in headline_header()
    assert "F1" in class_header() and "macro F1" not in class_header()


LONG = "finetune:simclr_bce[loss=bce,balance_strategy=standard,encoder_lr=0.0001]"


@pytest.mark.parametrize("width", [150, 80])
def test_tables_never_cut_a_number(width: int) -> None:
    """Issue 17 N: a long configuration name squeezed cells to `met…`, `-0.0095 [-0.1432, +0.12…`."""
    from rich.console import Console

    from ecgcli.cli.compare import print_comparison, print_table
    from ecgcli.cli.multiseed import tests_table

    t = {"mean_diff": -0.0095, "diff_ci_low": -0.1432, "diff_ci_high": 0.1242, "t_p": 0.5}
    t |= {"wilcoxon_p": 0.6, "welch_p": 0.7, "cohens_dz": -0.1}
    doc = {
        "grid": {"baseline": "bce+standard"},
        "comparisons": [
            {
                "config": LONG,
                "label_fraction": 0.1,
                "n_pairs": 3,
                "tests": dict.fromkeys(("auroc", "f1", "sensitivity", "specificity"), t),
            }
        ],
    }
    methods = [m for m in sweep_methods() if m.label_fraction == 0.1]
    methods[1].name = LONG
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False)
    print_table(console, tests_table(doc))
    print_comparison(compare(methods), console)
    text = buf.getvalue()
    assert "…" not in text
    assert "-0.0095 [-0.1432, +0.1242]" in text and "p paired t" in text and "sens" in text
    assert text.count(f"finetune:simclr_bce = {LONG}") == 3  # options listed once under each table
    (row,) = [line for line in text.splitlines() if re.match(r"\s*finetune:simclr_bce\s+3\s", line)]
    assert re.search(r"0\.\d{3} ± 0\.\d{3}", row)


def test_arms_are_chosen_on_fold_9(grid: dict) -> None:
    doc = json.loads((grid["out"] / "multiseed.json").read_text())
    val = {
        r["config"]: sum(run["val"]["auroc"] for run in r["runs"]) / len(r["runs"]) for r in doc["results"]
    }
    arms = ["--arm", "sup=bce+standard", "--arm", "sup=focal+oversample"]
    arms += ["--arm", "frozen=probe:rand[lr=0.01]"]
    out = invoke(["compare", str(grid["out"]), *arms, "--format", "json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    best = max(["bce+standard", "focal+oversample"], key=lambda c: val[c])
    choices = {c["arm"]: c for c in got["selection"]["choices"]}
    assert choices["sup"]["chosen"] == best and choices["frozen"]["chosen"] == "probe:rand[lr=0.01]"
    assert choices["sup"]["val_mean"] == pytest.approx(val[best])
    assert [m["name"] for m in got["methods"]] == ["sup", "frozen"] and got["baseline"] == "sup"
    table = invoke(["compare", str(grid["out"]), *arms])
    assert table.exit_code == 0 and "chosen on the validation fold (9)" in table.stdout
    one_error_line(invoke(["compare", str(grid["out"]), "--arm", "sup=nope"]), "'nope' is not among")


def test_methods_are_paired_by_seed_against_the_baseline() -> None:
    from scipy import stats

    from ecgcli.cli.formats import to_csv, to_markdown

    def method(name: str, kind: str, seeds: list[int], aurocs: list[float]) -> Method:
        scores = [{"auroc": a, "auprc": a - 0.2, "f1": 0.5} for a in aurocs]
        return Method(name, kind, 0.01, "multiseed", "x", list(SUPERCLASSES), {"n": 10}, seeds, scores)

    base = method("scratch", "supervised", [42, 52, 62], [0.80, 0.70, 0.75])
    pre = method("byol", "finetune", [42, 52, 62], [0.83, 0.74, 0.77])
    lone = method("lone", "finetune", [42, 99], [0.9, 0.9])  # one seed shared: nothing to pair
    comp = compare([base, pre, lone])
    rows = {r.method.name: r for r in comp.rows}
    assert rows["scratch"].paired == {"auroc": None, "auprc": None}
    assert rows["lone"].paired == {"auroc": None, "auprc": None}
    test = rows["byol"].paired["auroc"]
    assert test.n == 3 and test.mean_diff == pytest.approx(0.03)
    assert test.t_p == pytest.approx(stats.ttest_rel([0.83, 0.74, 0.77], [0.80, 0.70, 0.75]).pvalue)
    md = to_markdown(comp)
    ci = f"[{test.diff_ci_low:+.3f}, {test.diff_ci_high:+.3f}]"
    assert f"| byol | 1% | 3 | +0.030 {ci}, p = {test.t_p:.2f}" in md
    assert "| lone | 1%" not in md.split("Paired by seed")[1]
    row = next(csv.DictReader(io.StringIO(to_csv(comp))))
    assert row["method"] == "scratch" and row["paired_auroc_p"] == ""
    byol = [r for r in csv.DictReader(io.StringIO(to_csv(comp))) if r["method"] == "byol"][0]
    assert float(byol["paired_auroc_diff"]) == pytest.approx(0.03) and byol["paired_auroc_n"] == "3"
