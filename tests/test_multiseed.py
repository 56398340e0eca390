"""ecg multiseed: spec grammar and validation, statistics against scipy, resume, refusals, jobs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.cli.app import app
from ecgcli.errors import CheckpointError, ConfigError, Interrupted
from ecgcli.events import EpochDone, EpochStarted
from ecgcli.experiments.grid import build_grid
from ecgcli.experiments.results import load_results, results_path
from ecgcli.experiments.runner import CellDone, CellEvent, run_multiseed
from ecgcli.experiments.spec import DEFAULT_CONFIGS, DEFAULT_SEEDS, parse_fractions, parse_seeds, parse_spec
from ecgcli.scoring.stats import BOOTSTRAP_RESAMPLE, bootstrap_auroc_ci

runner = CliRunner()


# Tiny real training: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_encoder_checkpoint(path: Path, width: int = 16) -> Path:
    """A random (untrained) encoder checkpoint in the format `ecg train ssl` writes."""
    from ecgcli.models import build_encoder
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

    encoder = build_encoder("cnn1d", in_ch=12, width=width)
    meta = checkpoint_meta(
        "encoder",
        architecture={"encoder": "cnn1d", "encoder_args": encoder.config(), "feature_dim": encoder.out_dim},
        class_names=list(SUPERCLASSES),
        leads=list(LEADS),
        sampling_rate=100,
        normalisation={"mean": [0.0] * 12, "std": [1.0] * 12},
    )
    return save_checkpoint(path, encoder, meta)


def common(train_kwargs: dict[str, Any], **over: Any) -> dict[str, Any]:
    keys = ("data_root", "cache_dir", "device", "workers", "epochs", "batch_size")
    return {**{k: train_kwargs[k] for k in keys}, **over}


def grid_for(
    train_kwargs: dict, out: Path, configs=("bce+standard", "focal+oversample"), seeds=(42, 52), **kw
):
    return build_grid(
        list(configs),
        seeds,
        kw.pop("fractions", (1.0,)),
        common(train_kwargs, **kw.pop("common", {})),
        kw.pop("sets", ["width=16"]),
        out,
        **kw,
    )


# --- spec grammar and validation -----------------------------------------------------------


def test_defaults_match_the_reference_study() -> None:
    assert DEFAULT_SEEDS == (42, 52, 62, 72, 82, 92, 102, 112, 122, 132)
    assert DEFAULT_CONFIGS == ("bce+standard", "focal+oversample")


def test_spec_grammar(tmp_path: Path) -> None:
    s = parse_spec("focal+oversample")
    assert (s.kind, s.loss, s.strategy, s.name, s.slug) == (
        "supervised",
        "focal",
        "oversample",
        "focal+oversample",
        "focal_oversample",
    )
    s = parse_spec(" focal+oversample[select_metric=auroc, schedule=cosine] ")
    assert s.name == "focal+oversample[select_metric=auroc,schedule=cosine]"
    assert s.overrides == (("select_metric", "auroc"), ("schedule", "cosine"))
    assert s.slug == "focal_oversample_select_metric=auroc_schedule=cosine"
    s = parse_spec(f"finetune:simclr={tmp_path}/ssl/model.safetensors[encoder_lr=1e-4]")
    assert (s.kind, s.name) == ("finetune", "finetune:simclr[encoder_lr=1e-4]")
    assert s.checkpoint == str(tmp_path / "ssl" / "model.safetensors")
    assert str(tmp_path) not in s.name  # the display name never holds the path
    s = parse_spec("probe:byol=rel/enc.safetensors")
    assert (s.kind, s.name) == ("probe", "probe:byol") and Path(s.checkpoint).is_absolute()
    for bad in (
        "focal",
        "focal+",
        "+standard",
        "a+b+c",
        "finetune:simclr",
        "finetune:=x",
        "probe:a b=x",
        "[x=1]",
    ):
        with pytest.raises(ConfigError, match="bad configuration"):
            parse_spec(bad)
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        parse_spec("focal+oversample[epochs]")


def test_seed_and_fraction_lists() -> None:
    assert parse_seeds("42, 52,62") == (42, 52, 62)
    for bad, message in (
        ("", "empty"),
        (" , ", "empty"),
        ("4x", "'4x' is not an integer"),
        ("42,,52", "'' is not an integer"),
        ("1.5", "not an integer"),
        ("-1", "negative"),
        ("42,42", "listed twice"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_seeds(bad)
    assert parse_fractions("0.01,0.05,0.1,0.25,1.0") == (0.01, 0.05, 0.1, 0.25, 1.0)
    for bad in ("", "0", "1.5", "x", "0.1,0.1"):
        with pytest.raises(ConfigError):
            parse_fractions(bad)


def test_options_precedence_and_finetune_mapping(train_kwargs: dict, tmp_path: Path) -> None:
    ckpt = make_encoder_checkpoint(tmp_path / "enc" / "model.safetensors")
    grid = grid_for(
        train_kwargs,
        tmp_path / "out",
        configs=(
            "focal+oversample[epochs=4]",
            "bce+standard",
            f"finetune:r={ckpt}",
            f"probe:r={ckpt}[lr=0.01]",
        ),
        common={"epochs": 2, "encoder_lr": 1e-4},
        sets=["epochs=3"],
    )
    by_name = {c.name: grid.config_kwargs(c) for c in grid.configs}
    assert by_name["focal+oversample[epochs=4]"]["epochs"] == 4  # spec beats --set beats common
    assert by_name["bce+standard"]["epochs"] == 3
    assert by_name["bce+standard"]["loss"] == "bce" and "width" not in by_name["bce+standard"]
    assert "encoder_lr" not in by_name["bce+standard"]  # --encoder-lr is for finetune: only
    ft, probe = by_name["finetune:r"], by_name["probe:r[lr=0.01]"]
    assert ft["ssl_checkpoint"] == str(ckpt) and not ft["freeze_encoder"] and ft["encoder_lr"] == 1e-4
    assert ft["width"] is None  # a fine-tune takes the checkpoint's width unless told otherwise
    assert probe["freeze_encoder"] and "encoder_lr" not in probe and probe["lr"] == 0.01
    assert grid.baseline == "focal+oversample[epochs=4]"  # the first supervised configuration
    assert {c.name: c.kind for c in grid.configs}["probe:r[lr=0.01]"] == "probe"


@pytest.mark.parametrize(
    ("configs", "sets", "kw", "error", "message"),
    [
        (("focal+oversample",), ["wdith=16"], {}, ConfigError, "unknown option 'wdith'; valid keys: .*width"),
        (("focal+oversample[bogus=1]",), [], {}, ConfigError, "unknown option 'bogus'"),
        (("focal+oversample",), ["epochs=two"], {}, ConfigError, "epochs='two' is not a valid int"),
        (("focal+oversample",), ["seed=3"], {}, ConfigError, "use --seeds"),
        (("focal+oversample[loss=bce]",), [], {}, ConfigError, "loss comes from each configuration"),
        (("nope+standard",), [], {}, ConfigError, "unknown loss 'nope'"),
        (("focal+sideways",), [], {}, ConfigError, "unknown balance strategy"),
        (("focal+oversample[select_metric=auc]",), [], {}, ConfigError, "select-metric"),
        (("focal+oversample", "focal+oversample"), [], {}, ConfigError, "same name"),
        (("focal+oversample",), [], {"baseline": "bce+standard"}, ConfigError, "--baseline 'bce\\+standard'"),
        (("finetune:x=missing.safetensors",), [], {}, CheckpointError, "checkpoint not found"),
    ],
)
def test_every_spec_and_option_is_validated_before_training(
    train_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs, sets, kw, error, message
) -> None:
    import ecgcli.train.supervised as sup

    monkeypatch.setattr(sup, "train_classifier", lambda *a, **k: pytest.fail("trained before validating"))
    with pytest.raises(error, match=message):
        grid_for(train_kwargs, tmp_path / "out", configs=configs, sets=sets, **kw)


def test_a_finetune_checkpoint_of_the_wrong_width_is_refused_up_front(
    train_kwargs: dict, tmp_path: Path
) -> None:
    ckpt = make_encoder_checkpoint(tmp_path / "enc.safetensors", width=16)
    with pytest.raises(CheckpointError, match="width 16.*--width 32"):
        grid_for(train_kwargs, tmp_path / "out", configs=(f"probe:r={ckpt}",), sets=["width=32"])


# --- statistics on canned runs -------------------------------------------------------------

# Per-seed test scores of each configuration, chosen so every test has something to say.
CANNED = {
    "bce+standard": {42: 0.80, 52: 0.78, 62: 0.83, 72: 0.79},
    "focal+oversample": {42: 0.84, 52: 0.80, 62: 0.85, 72: 0.86},
}


def fake_trainer(calls: list[str]):
    """A stand-in for train_classifier that writes a complete run directory with known scores."""

    def train(cfg, callback=None, resume=None, init_encoder=None, data=None):
        from ecgcli.storage.runs import RunDir

        name = f"{cfg.loss}+{cfg.balance_strategy}"
        calls.append(f"{name} {cfg.seed}")
        base = CANNED[name][cfg.seed]
        run = RunDir(Path(cfg.run_dir))
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg.to_dict())

        def block(shift: float) -> dict:
            return {
                "macro_auroc": base + shift,
                "macro_f1": base - 0.2 + shift,
                "sensitivity": base - 0.1 + 2 * shift,
                "specificity": base + 0.05 - shift,
                "per_class": {
                    c: {"auroc": base, "f1": base - 0.2, "sensitivity": 0.7, "specificity": 0.9}
                    for c in SUPERCLASSES
                },
            }

        run.write_metrics(
            {
                "val": block(0.01),
                "val_tuned": block(0.02),
                "test": block(-0.03),
                "test_tuned": block(0.0),
                "best_epoch": 1,
                "epochs_run": 1,
                "timing": {"total_seconds": 0.1},
                "data": {"cache_id": "fake"},
            }
        )
        (run.path / "model.json").write_text(json.dumps({"class_names": list(SUPERCLASSES)}))
        run.model.write_bytes(b"")
        rng = np.random.default_rng(cfg.seed)
        y = rng.integers(0, 2, (40, 5))
        y[0], y[1] = 1, 0
        run.write_predictions(
            val_ecg_id=np.arange(40),
            val_y=y,
            val_prob=rng.random((40, 5)),
            test_ecg_id=np.arange(100, 140),
            test_y=y,
            test_prob=np.clip(y * 0.3 + rng.random((40, 5)) * 0.7, 0, 1),
        )

    return train


@pytest.fixture()
def canned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import ecgcli.train.supervised as sup

    calls: list[str] = []
    monkeypatch.setattr(sup, "train_classifier", fake_trainer(calls))
    return calls


def test_statistics_equal_scipys(train_kwargs: dict, tmp_path: Path, canned: list[str]) -> None:
    out = tmp_path / "ms"
    doc = run_multiseed(grid_for(train_kwargs, out, seeds=(42, 52, 62, 72)))
    assert doc == load_results(out)  # what is returned is what is on disk
    assert doc["format"] == "ecgcli-multiseed" and doc["version"] == 1 and doc["complete"]
    assert sorted(canned) == sorted(f"{c} {s}" for c in CANNED for s in (42, 52, 62, 72))
    assert doc["statistics"]["table_p_value"] == "paired t-test"
    shifts = {"auroc": 0.0, "f1": -0.2, "sensitivity": -0.1, "specificity": 0.05, "f1@0.5": -0.23}
    for res in doc["results"]:
        for metric, shift in shifts.items():
            x = np.array([CANNED[res["config"]][s] for s in (42, 52, 62, 72)]) + shift
            s = res["summary"]["test"][metric]
            half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
            assert s["mean"] == pytest.approx(x.mean())
            assert s["std"] == pytest.approx(x.std(ddof=1))
            assert (s["ci_low"], s["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half))
            assert (s["min"], s["max"], s["n"]) == pytest.approx((x.min(), x.max(), 4))
        for run in res["runs"]:
            with np.load(out / run["run_dir"] / "predictions.npz") as npz:
                ref = bootstrap_auroc_ci(npz["test_y"], npz["test_prob"], 1000, seed=0)
            assert run["bootstrap_auroc"] == pytest.approx({**ref.to_dict(), "resample": BOOTSTRAP_RESAMPLE})
    (comp,) = doc["comparisons"]
    assert (comp["baseline"], comp["config"], comp["n_pairs"]) == ("bce+standard", "focal+oversample", 4)
    a = np.array([CANNED["bce+standard"][s] for s in (42, 52, 62, 72)])
    b = np.array([CANNED["focal+oversample"][s] for s in (42, 52, 62, 72)])
    t = comp["tests"]["auroc"]
    d = b - a
    assert t["mean_diff"] == pytest.approx(d.mean())
    assert t["t_p"] == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert t["t_stat"] == pytest.approx(sps.ttest_rel(b, a).statistic)
    assert t["wilcoxon_p"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert t["welch_p"] == pytest.approx(sps.ttest_ind(b, a, equal_var=False).pvalue)
    assert t["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert (t["diff_ci_low"], t["diff_ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))


def test_pairs_are_the_seed_intersection(train_kwargs: dict, tmp_path: Path, canned: list[str]) -> None:
    """A configuration that lacks a seed (here: interrupted) is paired on the seeds both have."""
    out = tmp_path / "ms"
    grid = grid_for(train_kwargs, out, seeds=(42, 52, 62))

    def stop(event: Any) -> None:
        if isinstance(event, CellDone) and event.finished == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="5 of 6 runs finished"):
        run_multiseed(grid, stop)
    doc = load_results(out)
    assert not doc["complete"] and doc["cells"] == {"total": 6, "finished": 5}
    (comp,) = doc["comparisons"]
    assert comp["n_pairs"] == 2 and comp["seeds"] == [42, 52]
    a, b = [CANNED["bce+standard"][s] for s in (42, 52)], [CANNED["focal+oversample"][s] for s in (42, 52)]
    assert comp["tests"]["f1"]["t_p"] == pytest.approx(sps.ttest_rel(b, a).pvalue)


def test_rerun_reuses_finished_runs_and_may_grow(
    train_kwargs: dict, tmp_path: Path, canned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ecgcli.scoring.stats

    out = tmp_path / "ms"
    first = run_multiseed(grid_for(train_kwargs, out, seeds=(42, 52)))
    assert len(canned) == 4
    canned.clear()
    boots: list[int] = []
    real = ecgcli.scoring.stats.test_bootstraps
    monkeypatch.setattr(
        ecgcli.scoring.stats, "test_bootstraps", lambda *a, **k: boots.append(1) or real(*a, **k)
    )
    again = run_multiseed(grid_for(train_kwargs, out, seeds=(42, 52)))
    assert canned == [] and boots == []  # nothing trained twice, bootstrap CIs reused
    assert [r["runs"] for r in again["results"]] == [r["runs"] for r in first["results"]]
    doc = run_multiseed(grid_for(train_kwargs, out, seeds=(42, 52, 62)))
    assert sorted(canned) == ["bce+standard 62", "focal+oversample 62"] and len(boots) == 2
    assert doc["complete"] and [r["n"] for r in doc["results"]] == [3, 3]


def test_intervals_of_an_older_resampling_are_drawn_again(
    train_kwargs: dict, tmp_path: Path, canned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bootstrap intervals stored before replicates had to keep every class (no ``resample``
    key) are recomputed from the predictions on the next collect, not reused."""
    import ecgcli.scoring.stats

    out = tmp_path / "ms"
    run_multiseed(grid_for(train_kwargs, out, seeds=(42,)))
    doc = json.loads(results_path(out).read_text())
    for res in doc["results"]:
        for run in res["runs"]:
            for interval in run["bootstrap"].values():
                del interval["resample"]
    results_path(out).write_text(json.dumps(doc))
    boots: list[int] = []
    real = ecgcli.scoring.stats.test_bootstraps
    monkeypatch.setattr(
        ecgcli.scoring.stats, "test_bootstraps", lambda *a, **k: boots.append(1) or real(*a, **k)
    )
    again = run_multiseed(grid_for(train_kwargs, out, seeds=(42,)))
    assert len(boots) == 2
    assert all(r["runs"][0]["bootstrap_auroc"]["resample"] == BOOTSTRAP_RESAMPLE for r in again["results"])


def test_a_grid_may_grow_but_not_shrink(train_kwargs: dict, tmp_path: Path, canned: list[str]) -> None:
    out = tmp_path / "ms"
    run_multiseed(grid_for(train_kwargs, out, seeds=(42, 52)))
    canned.clear()
    with pytest.raises(ConfigError, match="holds a larger grid \\(also configurations focal\\+oversample\\)"):
        run_multiseed(grid_for(train_kwargs, out, configs=("bce+standard",), seeds=(42, 52)))
    with pytest.raises(ConfigError, match="also seeds 52"):
        run_multiseed(grid_for(train_kwargs, out, seeds=(42,)))
    assert canned == []


def test_changed_options_in_the_same_out_are_refused(
    train_kwargs: dict, tmp_path: Path, canned: list[str]
) -> None:
    out = tmp_path / "ms"
    run_multiseed(grid_for(train_kwargs, out, seeds=(42,)))
    canned.clear()
    with pytest.raises(ConfigError, match="'bce\\+standard' trained with epochs=2 \\(now 3\\)"):
        run_multiseed(grid_for(train_kwargs, out, seeds=(42,), common={"epochs": 3}))
    # without multiseed.json the run directories themselves still refuse
    results_path(out).unlink()
    with pytest.raises(ConfigError, match="seed42 was trained with epochs=2 \\(now 3\\)"):
        run_multiseed(grid_for(train_kwargs, out, seeds=(42,), common={"epochs": 3}))
    assert canned == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "ecgcli-multiseed", "version": 1, "grid": {', "half-written"),
        ("", "half-written"),
        ('{"format": "ecgcli-multiseed", "version": 2}', "version 2 is not supported"),
        ('{"format": "something-else", "version": 1}', "not an ecgcli multiseed results file"),
        ('{"format": "ecgcli-multiseed", "version": 1}', "incomplete results file"),
    ],
)
def test_bad_results_files_are_refused(
    train_kwargs: dict, tmp_path: Path, canned: list[str], content: str, message: str
) -> None:
    out = tmp_path / "ms"
    out.mkdir()
    results_path(out).write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_results(out)
    with pytest.raises(ConfigError, match=message):
        run_multiseed(grid_for(train_kwargs, out, seeds=(42,)))
    assert canned == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", ""], "--seeds is empty"),
        (["--seeds", "4x"], "'4x' is not an integer seed"),
        (["--seeds", "42", "--label-fractions", "0.1,2"], "not in \\(0, 1\\]"),
        (["--seeds", "42", "--label-fraction", "0.1", "--label-fractions", "0.1"], "not both"),
        (["--seeds", "42", "-c", "focal+oversample[wdith=16]"], "unknown option 'wdith'"),
        (["--seeds", "42", "--jobs", "-1"], "--jobs"),
        # zero is a value, not "unset": refused like a negative (not the default silently)
        (["--seeds", "42", "--label-fraction", "0"], "--label-fraction must be in \\(0, 1\\], got 0"),
        (["--seeds", "42", "--width", "0"], "--width must be at least 1, got 0"),
        (["--seeds", "42", "-c", "focal+oversample[width=0]"], "--width must be at least 1, got 0"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    import re

    result = runner.invoke(app, ["multiseed", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr
    assert "Traceback" not in result.output
    # a configuration name with brackets is shown literally (not eaten as rich markup)
    if "wdith" in message:
        assert "focal+oversample[wdith=16]" in lines[0]


# --- real training: interrupt and resume, parallel jobs ------------------------------------


def test_interrupted_grid_resumes_without_redoing_finished_runs(
    train_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ecgcli.train.supervised as sup

    out = tmp_path / "ms"
    grid = grid_for(train_kwargs, out, seeds=(42, 52))  # 4 cells, 2 epochs each
    third = grid.cells()[2]

    def interrupt(event: Any) -> None:  # Ctrl-C in epoch 2 of the third run
        inner = getattr(event, "event", None)
        mine = isinstance(event, CellEvent) and event.key == third.key
        if mine and isinstance(inner, EpochStarted) and inner.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="2 of 4 runs finished"):
        run_multiseed(grid, interrupt)
    doc = load_results(out)
    assert doc["cells"]["finished"] == 2 and not doc["complete"]
    paths = [c.path(out) for c in grid.cells()]
    assert (paths[2] / "state" / "last.safetensors").is_file() and not (paths[2] / "metrics.json").exists()
    mtimes = {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths[:2]}

    calls = {"train": 0, "resume": 0}
    real_train, real_resume = sup.train_classifier, sup.resume_classifier

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapper

    monkeypatch.setattr(sup, "train_classifier", counted("train", real_train))
    monkeypatch.setattr(sup, "resume_classifier", counted("resume", real_resume))
    events: list = []
    doc = run_multiseed(grid, events.append)
    # resume_classifier calls train_classifier through the module too, hence 2 train calls
    assert calls == {"resume": 1, "train": 2}
    assert doc["complete"] and doc["cells"]["finished"] == 4
    assert {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths[:2]} == mtimes
    resumed = [e.event.epoch for e in events if isinstance(e, CellEvent) and isinstance(e.event, EpochDone)]
    assert resumed == [2, 1, 2]  # the third run only redid epoch 2, the fourth ran both
    assert json.loads((paths[2] / "metrics.json").read_text())["epochs_run"] == 2

    # a finished run whose metrics.json is lost is re-evaluated from its saved state, not retrained
    (paths[0] / "metrics.json").unlink()
    calls.update(train=0, resume=0)
    events.clear()
    run_multiseed(grid, events.append)
    assert calls == {"resume": 1, "train": 1}
    assert not [e for e in events if isinstance(e, CellEvent) and isinstance(e.event, EpochDone)]
    assert load_results(out)["complete"]


def test_parallel_jobs_with_one_thread_each(train_kwargs: dict, tmp_path: Path) -> None:
    """Two spawned workers; Ctrl-C (here: raised by the callback) stops both, which keep their
    last epoch; a second invocation resumes them in parallel."""
    from ecgcli.settings import usable_cores

    out = tmp_path / "ms"
    grid = grid_for(train_kwargs, out, seeds=(42,), common={"epochs": 2})

    def interrupt(event: Any) -> None:
        if isinstance(event, CellEvent) and isinstance(event.event, EpochDone):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="of 2 runs finished"):
        run_multiseed(grid, interrupt, jobs=2)
    assert not load_results(out)["complete"]
    events: list = []
    doc = run_multiseed(grid, events.append, jobs=2)
    assert doc["complete"] and doc["cells"]["finished"] == 2
    done = {e.key for e in events if isinstance(e, CellEvent) and isinstance(e.event, EpochDone)}
    started = {e.key for e in events if type(e).__name__ == "CellStarted"}
    assert done <= started and started  # epoch events came back from the workers
    for cell in grid.cells():
        metrics = json.loads((cell.path(out) / "metrics.json").read_text())
        assert metrics["timing"]["threads"] == max(1, usable_cores() // 2)
        assert metrics["epochs_run"] == 2
    assert all(math.isfinite(r["runs"][0]["test"]["auroc"]) for r in doc["results"])


def test_collect_rebuilds_the_grid_from_the_folder_alone(
    train_kwargs: dict, tmp_path: Path, canned: list[str]
) -> None:
    """Bare ``--collect`` (no other flag) reads the grid from OUT, with or without
    multiseed.json, trains nothing and never records the default grid."""
    out = tmp_path / "ms"
    grid = grid_for(train_kwargs, out, configs=("bce+standard", "focal+oversample[lr=0.002]"))
    first = run_multiseed(grid)
    canned.clear()

    def shown(doc: dict) -> tuple:
        return doc["grid"], [(r["config"], r["n"], [x["test"] for x in r["runs"]]) for r in doc["results"]]

    for deleted in (False, True):
        if deleted:
            results_path(out).unlink()
        result = runner.invoke(app, ["multiseed", "--collect", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "4 runs, 4 already finished" in result.stderr and "holds a larger grid" not in result.output
        assert shown(load_results(out)) == shown(first) and canned == []
    again = run_multiseed(grid)  # the original command is still accepted, and trains nothing
    assert canned == [] and shown(again) == shown(first)
    empty = runner.invoke(app, ["multiseed", "--collect", "--out", str(tmp_path / "none")])
    assert empty.exit_code == 2 and "nothing to collect" in empty.stderr
