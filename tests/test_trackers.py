"""`--tracker tensorboard` and `--tracker mlflow` with the real libraries: what a tiny run logs is
read back from the event file and the MLflow store and compared, number by number, with the
run's own metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import Interrupted
from ecgcli.events import EpochDone, EpochStarted, Message
from ecgcli.train.config import SSLConfig, SupervisedConfig

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
runner = CliRunner()


@pytest.fixture(autouse=True)
def file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3 opens a file store only when asked; the tracker asks in-process, the test's own
    client too."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the run's TensorBoard event files: tag -> {step: value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def hparams(run_dir: Path) -> dict[str, object]:
    """The hparams plugin's session: the hyperparameters the run recorded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    raw = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(raw).session_start_info
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def mlflow_runs(store: Path) -> tuple:
    """A client of the MLflow store, and every run of experiment ``ecgcli`` in it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("ecgcli")
    return client, client.search_runs([experiment.experiment_id])


def test_tensorboard_logs_every_epoch_and_the_final_scores(train_kwargs: dict, one_torch_thread) -> None:
    from ecgcli.train.supervised import train_classifier

    result = train_classifier(SupervisedConfig(**train_kwargs, tracker="tensorboard"))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    logged = scalars(result.run_dir)
    for h in metrics["history"]:
        step = h["epoch"]
        assert logged["train/loss"][step] == pytest.approx(h["train_loss"], rel=1e-6)
        for name in ("auroc", "f1", "sensitivity", "specificity"):
            assert logged[f"val/{name}"][step] == pytest.approx(h[name], rel=1e-6, abs=1e-7)
        assert logged["train/lr"][step] == pytest.approx(h["lr"], rel=1e-6)
        assert logged["train/samples_per_s"][step] == pytest.approx(h["samples_per_s"], abs=0.06)
    assert sorted(logged["train/loss"]) == [1, 2]
    last = metrics["epochs_run"]
    assert logged["final/test/macro_auroc"][last] == pytest.approx(metrics["test"]["macro_auroc"], rel=1e-6)
    assert logged["final/test_tuned/macro_f1"][last] == pytest.approx(metrics["test_tuned"]["macro_f1"])
    assert logged["final/best_epoch"][last] == metrics["best_epoch"]
    recorded = hparams(result.run_dir)
    assert recorded["lr"] == pytest.approx(train_kwargs.get("lr", 1e-3))
    assert recorded["encoder"] == "cnn1d" and recorded["ecgcli.kind"] == "supervised"


def test_ssl_logs_its_probe_auroc(train_kwargs: dict, one_torch_thread) -> None:
    from ecgcli.train.ssl import train_ssl

    common = {k: v for k, v in train_kwargs.items() if k != "label_fraction"}
    tiny = {"batch_size": 64, "hidden_dim": 64, "projection_dim": 32, "probe_fraction": 1.0}
    cfg = SSLConfig(**{**common, **tiny}, tracker="tensorboard")
    result = train_ssl(cfg)
    logged = scalars(result.run_dir)
    for h in result.metrics["history"]:
        assert logged["val/probe_auroc"][h["epoch"]] == pytest.approx(h["probe_auroc"], rel=1e-6)
        assert logged["train/augment_share"][h["epoch"]] == pytest.approx(h["augment_share"], rel=1e-5)
    final = result.metrics["final_probe"]["probe_auroc"]
    assert logged["final/probe_auroc"][2] == pytest.approx(final, rel=1e-6)
    assert hparams(result.run_dir)["method"] == "simclr"


def test_mlflow_from_the_cli_logs_params_epochs_results_and_artifacts(
    synth_root: Path, session_cache: Path, tmp_path: Path, one_torch_thread
) -> None:
    runs = tmp_path / "runs"
    args = ["--data-root", str(synth_root), "--device", "cpu", "--epochs", "2", "--width", "16"]
    args += ["--label-fraction", "1", "--batch-size", "32", "--tracker", "mlflow", "--name", "r"]
    env = {"ECG_CACHE_DIR": str(session_cache), "ECG_RUNS_DIR": str(runs)}
    res = runner.invoke(app, ["train", "supervised", *args], env=env)
    assert res.exit_code == 0, res.output
    metrics = json.loads((runs / "r" / "metrics.json").read_text())
    client, found = mlflow_runs(runs / "mlruns")  # beside the run folder
    (run,) = found
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert json.loads((runs / "r" / "tracker.json").read_text())["run_id"] == run.info.run_id
    assert run.data.params["epochs"] == "2" and run.data.params["tracker"] == "mlflow"
    assert run.data.tags["ecgcli.kind"] == "supervised"
    for key, field in (
        ("train/loss", "train_loss"),
        ("val/auroc", "auroc"),
        ("val/f1", "f1"),
        ("train/lr", "lr"),
    ):
        history = client.get_metric_history(run.info.run_id, key)
        assert {m.step: m.value for m in history} == {h["epoch"]: h[field] for h in metrics["history"]}
    assert run.data.metrics["final/test/macro_auroc"] == metrics["test"]["macro_auroc"]
    assert run.data.metrics["final/val_tuned/macro_f1"] == metrics["val_tuned"]["macro_f1"]
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == ["checkpoint", "config.json", "metrics.json", "plots"]
    checkpoint = sorted(a.path for a in client.list_artifacts(run.info.run_id, "checkpoint"))
    assert checkpoint == ["checkpoint/model.json", "checkpoint/model.safetensors"]
    plots = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id, "plots")}
    assert set(plots) == {"plots/roc_test.png", "plots/reliability_test.png"}
    assert all(size > 5000 for size in plots.values())  # a drawn figure, not an empty file


def test_run_figures_draw_the_run_s_own_predictions(tmp_path: Path) -> None:
    from ecgcli.scoring.figures import run_figures

    run = tmp_path / "run"
    run.mkdir()
    assert run_figures(run, tmp_path / "out") == []  # no predictions: nothing drawn
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (60, 3)).astype(np.float32)
    y[:, 2] = 0  # a class without positives has no ROC curve, and must not fail
    np.savez(run / "predictions.npz", test_y=y, test_prob=rng.random((60, 3)).astype(np.float32))
    (run / "metrics.json").write_text(json.dumps({"class_names": ["NORM", "MI", "CD"]}))
    paths = run_figures(run, tmp_path / "out")
    assert [p.name for p in paths] == ["roc_test.png", "reliability_test.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_a_resumed_run_logs_to_the_same_mlflow_run(train_kwargs: dict, one_torch_thread) -> None:
    from ecgcli.train.supervised import resume_classifier, train_classifier

    def stop(event: object) -> None:
        if isinstance(event, EpochStarted) and event.epoch == 2:
            raise KeyboardInterrupt

    cfg = SupervisedConfig(**train_kwargs, tracker="mlflow", name="cut")
    with pytest.raises(Interrupted):
        train_classifier(cfg, stop)
    store = Path(train_kwargs["runs_dir"]) / "mlruns"
    assert mlflow_runs(store)[1][0].info.status == "KILLED"
    resume_classifier(Path(train_kwargs["runs_dir"]) / "cut")
    client, (run,) = mlflow_runs(store)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]


def test_multiseed_logs_each_cell_as_its_own_tagged_run(
    synth_root: Path, session_cache: Path, tmp_path: Path, one_torch_thread
) -> None:
    out = tmp_path / "grid"
    args = ["--data-root", str(synth_root), "--device", "cpu", "--epochs", "2", "--seeds", "42,52"]
    args += ["-c", "bce+standard", "--label-fraction", "1", "--set", "width=16", "--out", str(out)]
    env = {"ECG_CACHE_DIR": str(session_cache), "ECG_TRACKER": "mlflow"}  # the setting, not the flag
    res = runner.invoke(app, ["multiseed", *args], env=env)
    assert res.exit_code == 0, res.output
    client, found = mlflow_runs(tmp_path / "mlruns")  # beside the grid folder
    assert sorted(r.data.tags["seed"] for r in found) == ["42", "52"]
    for run in found:
        assert run.data.tags["ecgcli.grid"] == "grid" and run.data.tags["arm"] == "bce+standard"
        assert run.info.run_name == f"bce_standard-lf1-s{run.data.tags['seed']}"
        cell = Path(run.data.tags["ecgcli.run_dir"])
        assert cell.parent.parent.parent == out.resolve()
        metrics = json.loads((cell / "metrics.json").read_text())
        assert run.data.metrics["final/test/macro_auroc"] == metrics["test"]["macro_auroc"]


@pytest.mark.parametrize(
    ("tracker", "modules"),
    [("mlflow", ["mlflow"]), ("tensorboard", ["tensorboard", "torch.utils.tensorboard"])],
)
def test_a_missing_extra_is_one_line_before_any_work(
    tracker: str, modules: list[str], synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    env = {"ECG_CACHE_DIR": str(tmp_path / "cache"), "ECG_RUNS_DIR": str(tmp_path / "runs")}
    for command in (["train", "supervised"], ["multiseed", "--seeds", "42", "--out", str(tmp_path / "g")]):
        args = [*command, "--data-root", str(synth_root), "--tracker", tracker]
        res = runner.invoke(app, args, env=env)
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pip install 'ecgcli[{tracker}]'" in lines[0], res.stderr
        assert not any(tmp_path.iterdir())  # no cache, no run folder, no grid folder


def test_a_failing_tracker_warns_once_and_training_goes_on() -> None:
    from ecgcli.train.trackers import Guarded

    class Broken:
        calls = 0

        def __call__(self, event: object) -> None:
            Broken.calls += 1
            raise OSError("disk full")

    heard: list = []
    tracker = Guarded(Broken(), heard.append)
    for epoch in (1, 2):
        tracker(EpochDone(epoch, 2, 0.5, {}, False, 1.0, 1e-3, 10.0))
    assert Broken.calls == 1 and len(heard) == 1 and isinstance(heard[0], Message)
    assert "disk full" in heard[0].text and heard[0].level == "warning"


def test_only_rank_0_has_a_tracker(tmp_path: Path) -> None:
    from ecgcli.storage.runs import RunDir
    from ecgcli.train.run import tracked

    cfg = SimpleNamespace(to_dict=lambda: {"tracker": "tensorboard", "tracker_tags": {}})
    heard: list = []
    with tracked(cfg, RunDir(tmp_path), False, SimpleNamespace(is_main=False), heard.append) as tracker:
        assert tracker is None
    assert heard == []
    with tracked(cfg, RunDir(tmp_path), False, SimpleNamespace(is_main=True), heard.append) as tracker:
        assert tracker is not None
    assert "tensorboard --logdir" in heard[0].text  # where it logs, said once at the start


def test_an_ablation_logs_its_pretrainings_beside_its_fine_tunes(tmp_path: Path) -> None:
    from ecgcli.experiments.ablation import plan_ablation

    common = {"data_root": str(tmp_path), "device": "cpu", "tracker": "mlflow"}
    plan = plan_ablation(("jitter",), (42,), 1.0, {**common, "width": 16}, common, tmp_path / "abl")
    pretraining = plan.ssl_config("no-jitter", ["jitter"])
    assert pretraining.tracker_tags == {"ecgcli.ablation": "abl", "arm": "pretrain:no-jitter"}
    cell = plan.grid(check_checkpoints=False)
    fine_tune = cell.cell_config(cell.cells()[0])
    assert (
        Path(pretraining.mlflow_tracking_uri)
        == Path(fine_tune.mlflow_tracking_uri)
        == tmp_path / "abl" / "mlruns"
    )
    assert fine_tune.tracker_tags["ecgcli.grid"] == "finetune"
