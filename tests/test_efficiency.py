"""The label-efficiency report: the crossing rule, the factor and its bounds, the per-seed
interval, and the tables, plot and JSON of `ecg compare` on a hand-made sweep."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from ecgcli import SUPERCLASSES
from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.experiments.efficiency import crossing, label_efficiency, seed_factors

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


def log_curve(shift: float = 1.0, fractions=FRACTIONS) -> list[float]:
    """0.8 + 0.05 ln(shift * f): linear in log fraction, so interpolation is exact."""
    return [0.8 + 0.05 * math.log(shift * f) for f in fractions]


# --- the crossing rule ---------------------------------------------------------------------


def test_a_curve_shifted_by_two_along_the_fraction_axis_gives_factor_two() -> None:
    base, method = log_curve(), log_curve(2.0)  # method at f scores what the baseline scores at 2f
    for i in (2, 3, 4, 5, 6):  # targets inside the method's range: 0.05 ... 1.0
        c = crossing(FRACTIONS, method, base[i], FRACTIONS[i])
        assert c.bound == "exact"
        assert c.factor == pytest.approx(2.0, rel=1e-9)
        assert c.fraction == pytest.approx(FRACTIONS[i] / 2, rel=1e-9)
        assert c.text() == "2.00×"
    # the baseline's 1%: the method already beats it at its lowest fraction: only > 0.01/0.01
    low = crossing(FRACTIONS, method, base[0], 0.01)
    assert (low.bound, low.factor, low.fraction, low.text()) == ("lower", 1.0, None, ">1.00×")
    # the other way round the baseline never reaches the method's score at 100%: < 1.0/1.0
    high = crossing(FRACTIONS, base, method[-1], 1.0)
    assert (high.bound, high.factor, high.fraction, high.text()) == ("upper", 1.0, None, "<1.00×")
    # and inside, the baseline needs twice the labels: factor 1/2
    assert crossing(FRACTIONS, base, method[2], 0.05).factor == pytest.approx(0.5, rel=1e-9)


def test_linear_interpolation_is_in_log_fraction_and_takes_the_first_crossing() -> None:
    # 0.6 at 10%, 0.8 at 40%: 0.7 is reached half-way in log fraction, at 20%, not at 25%
    c = crossing([0.1, 0.4], [0.6, 0.8], 0.7, 0.5)
    assert c.fraction == pytest.approx(0.2) and c.factor == pytest.approx(2.5)
    # not made monotone: a dip after the first crossing does not move it
    c = crossing([0.1, 0.2, 0.4, 0.8], [0.6, 0.8, 0.65, 0.9], 0.7, 0.8)
    assert c.fraction == pytest.approx(0.1 * 2**0.5) and c.bound == "exact"
    # exactly equal at the lowest fraction: crossed there, exact
    c = crossing([0.1, 0.2], [0.7, 0.8], 0.7, 0.4)
    assert (c.bound, c.factor, c.fraction) == ("exact", pytest.approx(4.0), 0.1)
    # bounds use the method's own ends: > f/f_min, < f/f_max
    assert crossing([0.05, 0.2], [0.9, 0.95], 0.7, 0.1).text() == ">2.00×"
    assert crossing([0.05, 0.2], [0.5, 0.6], 0.7, 0.1).text() == "<0.50×"


def test_bad_curves_are_refused() -> None:
    with pytest.raises(ConfigError, match="increasing"):
        crossing([0.2, 0.1], [0.5, 0.6], 0.55, 0.1)
    with pytest.raises(ConfigError, match="as many fractions as scores"):
        crossing([0.1, 0.2], [0.5], 0.55, 0.1)
    with pytest.raises(ConfigError, match="baseline 'x' is not among"):
        label_efficiency({"a": {0.1: {1: 0.5}}}, "x")
    with pytest.raises(ConfigError, match="not 'f1'"):
        label_efficiency({"a": {0.1: {1: 0.5}}}, "a", "f1")


def test_per_seed_factors_and_their_t_interval_on_the_log_scale() -> None:
    """Seeds whose curves are the baseline's shifted by 2, 4 and 8: per-seed factors 2, 4, 8,
    geometric mean 4, median 4, CI exp(mean ln ± t(0.975, 2) sd/√3)."""
    shifts = {1: 2.0, 2: 4.0, 3: 8.0}
    fr = (0.01, 0.1, 1.0)
    base_curve = log_curve(1.0, fr)
    curves = {
        "base": {f: dict.fromkeys(shifts, base_curve[i]) for i, f in enumerate(fr)},
        "m": {f: {s: log_curve(k, fr)[i] for s, k in shifts.items()} for i, f in enumerate(fr)},
    }
    (at_1, at_10, at_100) = label_efficiency(curves, "base")
    assert [f.label_fraction for f in (at_1, at_10, at_100)] == [0.01, 0.1, 1.0]
    half = sps.t.ppf(0.975, 2) * math.log(2) / math.sqrt(3)  # sd of ln(2), ln(4), ln(8) is ln 2
    for f in (at_10, at_100):
        s = f.seeds
        assert [c.factor for c in s.crossings] == pytest.approx([2.0, 4.0, 8.0])
        assert (s.n, s.censored) == (3, 0)
        assert s.geo_mean == pytest.approx(4.0) and s.median == pytest.approx(4.0)
        assert s.ci_low == pytest.approx(4.0 * math.exp(-half)) and s.ci_high == pytest.approx(
            4.0 * math.exp(half)
        )
        # the mean curve is the baseline shifted by the geometric mean of the shifts: 4
        assert f.crossing.factor == pytest.approx(4.0) and f.crossing.bound == "exact"
        assert f.text() == f"4.00× [{4 * math.exp(-half):.2f}, {4 * math.exp(half):.2f}]"
        assert f.target == pytest.approx(base_curve[fr.index(f.label_fraction)])
    # at 1% every seed already beats the baseline at its lowest fraction: bounds, no interval
    assert at_1.crossing.text() == ">1.00×"
    assert at_1.seeds.censored == 3 and math.isnan(at_1.seeds.ci_low) and math.isnan(at_1.seeds.geo_mean)
    assert at_1.text() == ">1.00× (3/3 seeds bounds)"
    d = at_10.to_dict()
    assert d["bound"] == "exact" and d["seeds"]["per_seed"][2] == {
        "seed": 3,
        "factor": pytest.approx(8.0),
        "bound": "exact",
        "fraction": pytest.approx(0.1 / 8),
    }
    # one bounded seed among exact ones: no interval, and the text says why
    mixed = seed_factors(
        [1, 2], [crossing([0.1, 0.2], [0.6, 0.8], 0.7, 0.4), crossing([0.1, 0.2], [0.8, 0.9], 0.7, 0.4)]
    )
    assert mixed.censored == 1 and math.isnan(mixed.ci_low) and math.isnan(mixed.median)


def test_methods_with_one_fraction_and_missing_seeds() -> None:
    curves = {
        "base": {0.1: {1: 0.6, 2: 0.62}, 0.4: {1: 0.7, 2: 0.72}},
        "one": {0.1: {1: 0.9, 2: 0.9}},  # one fraction: no curve, no factor
        "m": {0.1: {1: 0.65, 2: 0.66}, 0.4: {1: 0.75}},  # seed 2 has one point only: left out
    }
    factors = label_efficiency(curves, "base")
    assert {f.method for f in factors} == {"m"}
    at_40 = next(f for f in factors if f.label_fraction == 0.4)
    assert at_40.seeds.seeds == [1]
    # mean curve 0.655 -> 0.75, target 0.71: crossed at 0.1 * 4 ** ((0.71 - 0.655) / 0.095)
    expected = 0.4 / (0.1 * 4 ** ((0.71 - 0.655) / 0.095))
    assert at_40.crossing.factor == pytest.approx(expected)
    assert at_40.seeds.geo_mean == pytest.approx(0.4 / (0.1 * 4 ** ((0.7 - 0.65) / 0.10)))


# --- the report on a hand-made multiseed.json ----------------------------------------------

SWEEP = (0.1, 0.2, 0.4)
SEEDS = (1, 2, 3)
#: per seed: the baseline's offset and the method's extra score. The method's extra c is a
#: shift of 2 ** (c / 0.05) along the fraction axis: factors 2**0.4, 2**0.5, 2**0.6.
OFFSET = {1: -0.01, 2: 0.0, 3: 0.01}
EXTRA = {1: 0.020, 2: 0.025, 3: 0.030}
T2 = sps.t.ppf(0.975, 2)


def _score(config: str, lf: float, seed: int) -> float:
    base = 0.6 + 0.05 * math.log2(lf / 0.1) + OFFSET[seed]
    return base + (EXTRA[seed] if config == "focal+oversample" else 0.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multiseed.json of two configurations x 3 fractions x 3 seeds, written by the results
    writer itself from hand-made run records (no training)."""
    from ecgcli.experiments.grid import build_grid
    from ecgcli.experiments.results import METRICS, write_results

    out = tmp_path_factory.mktemp("sweep")
    grid = build_grid(["bce+standard", "focal+oversample"], list(SEEDS), list(SWEEP), {}, out=out)
    records = {}
    for cell in grid.cells():
        auroc = _score(cell.spec.name, cell.label_fraction, cell.seed)
        test = dict.fromkeys(METRICS, 0.5) | {"auroc": auroc, "auprc": auroc - 0.2}
        records[(cell.spec.name, cell.label_fraction, cell.seed)] = {
            "seed": cell.seed,
            "run_dir": str(cell.path(out).relative_to(out)),
            "val": test,
            "test": test,
            "calibration": {"ece": 0.05, "brier": 0.1},
            "per_class": {c: {"auroc": auroc} for c in SUPERCLASSES},
            "bootstrap_auroc": {"estimate": auroc, "ci_low": None, "ci_high": None, "n_boot": 0},
            "class_names": list(SUPERCLASSES),
            "test_set": {"n": 100, "sha256": "0" * 16},
        }
    write_results(grid, records)
    return out


def invoke(args: list[str]):
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def test_multiseed_json_stores_the_factor(sweep: Path) -> None:
    doc = json.loads((sweep / "multiseed.json").read_text())
    eff = doc["label_efficiency"]
    assert eff["baseline"] == "bce+standard" and "first" in eff["rule"] and "log factor" in eff["uncertainty"]
    for metric in ("auroc", "auprc"):  # AUPRC is AUROC - 0.2 here: the same factors
        rows = {f["label_fraction"]: f for f in eff["metrics"][metric]}
        assert set(rows) == set(SWEEP) and {f["config"] for f in rows.values()} == {"focal+oversample"}
        assert rows[0.1]["bound"] == "lower" and rows[0.1]["factor"] == pytest.approx(1.0)
        for lf in (0.2, 0.4):
            assert rows[lf]["bound"] == "exact" and rows[lf]["factor"] == pytest.approx(2**0.5)
            seeds = rows[lf]["seeds"]
            assert [s["factor"] for s in seeds["per_seed"]] == pytest.approx([2**0.4, 2**0.5, 2**0.6])
            assert seeds["ci_low"] == pytest.approx(2 ** (0.5 - T2 * 0.1 / math.sqrt(3)))
            assert seeds["ci_high"] == pytest.approx(2 ** (0.5 + T2 * 0.1 / math.sqrt(3)))
    summary = {(r["config"], r["label_fraction"]): r["summary"]["test"] for r in doc["results"]}
    assert summary[("bce+standard", 0.1)]["auprc"]["mean"] == pytest.approx(0.4)  # AUPRC summarised too
    assert summary[("bce+standard", 0.1)]["auprc"]["ci_low"] == pytest.approx(0.4 - T2 * 0.01 / math.sqrt(3))


def test_compare_tables_show_curves_and_factor(sweep: Path) -> None:
    ci = f"[{1.0 * 2 ** (0.5 - T2 * 0.1 / 3**0.5):.2f}, {2 ** (0.5 + T2 * 0.1 / 3**0.5):.2f}]"
    assert ci == "[1.19, 1.68]"
    table = invoke(["compare", str(sweep)])
    assert table.exit_code == 0, table.output
    text = table.stdout
    assert "Label efficiency: test macro AUROC by labelled fraction" in text
    assert "Label efficiency: test macro AUPRC by labelled fraction" in text
    assert "Label-efficiency factor vs bce+standard (test macro AUROC)" in text
    assert "1.41×" in text and ci in text and ">1.00×" in text and "(3/3 seeds" in text
    assert "[0.575, 0.625]" in text  # baseline AUROC at 10%: 0.600 ± t·0.01/√3

    md = invoke(["compare", str(sweep), "--format", "markdown"]).stdout
    lines = md.splitlines()
    i = lines.index("Label efficiency: test macro AUROC by labelled fraction, mean [95% t-CI] over seeds:")
    assert lines[i + 2] == "| method | 10% | 20% | 40% |"
    assert lines[i + 4].startswith(
        "| bce+standard (baseline) | 0.600 [0.575, 0.625] | 0.650 [0.625, 0.675] |"
    )
    assert lines[i + 5].startswith("| focal+oversample | 0.625 [")
    j = lines.index("Label-efficiency factor vs bce+standard (test macro AUROC):")
    row = next(line for line in lines[j:] if line.startswith("| focal+oversample"))
    assert row == f"| focal+oversample | >1.00× (3/3 seeds bounds) | 1.41× {ci} | 1.41× {ci} |"
    j = lines.index("Label efficiency: test macro AUPRC by labelled fraction, mean [95% t-CI] over seeds:")
    assert "| bce+standard (baseline) | 0.400 [0.375, 0.425] |" in lines[j + 4]

    rows = list(csv.DictReader(io.StringIO(invoke(["compare", str(sweep), "--format", "csv"]).stdout)))
    focal = {float(r["label_fraction"]): r for r in rows if r["method"] == "focal+oversample"}
    assert float(focal[0.2]["efficiency_auroc_factor"]) == pytest.approx(2**0.5)
    assert focal[0.2]["efficiency_auroc_bound"] == "exact" and focal[0.1]["efficiency_auroc_bound"] == "lower"
    assert float(focal[0.4]["efficiency_auprc_ci_low"]) == pytest.approx(2 ** (0.5 - T2 * 0.1 / 3**0.5))
    assert all(r["efficiency_auroc_factor"] == "" for r in rows if r["method"] == "bce+standard")


def test_compare_json_holds_the_factor_and_respects_the_baseline(sweep: Path) -> None:
    res = invoke(["compare", str(sweep), "--format", "json", "--efficiency-metric", "auprc"])
    assert res.exit_code == 0, res.output
    eff = json.loads(res.stdout)["label_efficiency"]
    assert eff["baseline"] == "bce+standard" and eff["metric"] == "auprc"
    at_20 = next(f for f in eff["metrics"]["auroc"] if f["label_fraction"] == 0.2)
    assert at_20["factor"] == pytest.approx(2**0.5) and at_20["text"].startswith("1.41× [1.19, 1.68]")
    curve = {(c["method"], c["label_fraction"]): c for c in eff["curves"]["auprc"]}
    assert curve[("focal+oversample", 0.4)]["mean"] == pytest.approx(0.525)

    # the other configuration as the baseline: bce+standard needs √2 times *more* labels
    other = json.loads(
        invoke(["compare", str(sweep), "--format", "json", "--baseline", "focal+oversample"]).stdout
    )["label_efficiency"]
    rows = {f["label_fraction"]: f for f in other["metrics"]["auroc"]}
    assert other["baseline"] == "focal+oversample" and {f["config"] for f in rows.values()} == {
        "bce+standard"
    }
    assert rows[0.1]["bound"] == "exact" and rows[0.1]["factor"] == pytest.approx(2**-0.5)
    assert rows[0.4]["bound"] == "upper" and rows[0.4]["factor"] == pytest.approx(1.0)
    table = invoke(["compare", str(sweep), "--baseline", "focal+oversample"]).stdout
    assert "Label-efficiency factor vs focal+oversample" in table and "<1.00×" in table and "0.71×" in table


def test_a_bad_efficiency_metric_is_one_line(sweep: Path) -> None:
    res = invoke(["compare", str(sweep), "--efficiency-metric", "f1"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(
        r"--efficiency-metric must be one of auroc, auprc, got 'f1'", lines[0]
    )
    assert "Traceback" not in res.output


def test_the_label_efficiency_plot(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from ecgcli.inference.ecgpaper import pyplot

    plt = pyplot()
    drawn = []
    real_save = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn.append(fig)
        return real_save(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep)
    res = invoke(["compare", str(sweep), "--format", "csv", "--plots", str(tmp_path)])
    assert res.exit_code == 0, res.output
    png = tmp_path / "label_efficiency.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert f"wrote {png}" in res.stderr
    (fig,) = drawn  # no predictions.npz in the hand-made runs: no ROC figure
    auroc, auprc = fig.axes
    assert auroc.get_xscale() == "log" and auprc.get_ylabel() == "test macro AUPRC"
    labels = [line.get_label() for line in auroc.lines]
    assert labels == ["bce+standard (baseline)", "focal+oversample"]
    assert np.allclose(auprc.lines[1].get_ydata(), [0.425, 0.475, 0.525])
    assert len(auroc.collections) == 2  # one t-CI band per method
