"""Checkpoint selection: a warning when F1@0.5 keeps an epoch far below the run's best AUROC."""

from __future__ import annotations

import pytest

from ecgcli.events import Message
from ecgcli.train.config import SupervisedConfig
from ecgcli.train.loop import selection_warning


def _history(aurocs: list[float], kept: int) -> list[dict]:
    return [{"epoch": i + 1, "auroc": a, "f1": 0.1, "best": i + 1 == kept} for i, a in enumerate(aurocs)]


def test_warns_when_the_kept_epoch_trails_the_best_auroc() -> None:
    # what real PTB-XL rhythm at 1% of labels did: F1 kept epoch 1, AUROC kept rising
    text = selection_warning(_history([0.381, 0.331, 0.55, 0.733], kept=1), 1, "f1")
    assert text is not None
    assert "kept epoch 1 (fold-9 AUROC 0.381)" in text
    assert "epoch 4 reached 0.733" in text
    assert "--select-metric auroc" in text


@pytest.mark.parametrize(
    ("aurocs", "kept", "metric"),
    [
        ([0.80, 0.84, 0.83], 2, "f1"),  # kept the best AUROC epoch
        ([0.80, 0.84, 0.85], 2, "f1"),  # within 0.05 of the best
        ([0.38, 0.33, 0.73], 3, "auroc"),  # AUROC selection cannot trail itself
        ([0.38, 0.73], 1, None),  # "keep the last": nothing was selected
        ([float("nan"), 0.73], 1, "f1"),  # no AUROC to judge the kept epoch by
    ],
)
def test_no_warning_when_selection_is_sound(aurocs: list[float], kept: int, metric: str | None) -> None:
    assert selection_warning(_history(aurocs, kept), kept, metric) is None


def test_a_run_reports_the_warning_in_its_events_and_train_log(
    train_kwargs: dict, one_torch_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecgcli.train import supervised

    seen: list[list[dict]] = []

    def fake(history: list[dict], best_epoch: int, metric: str | None) -> str:
        seen.append(history)
        return f"selection by {metric} kept epoch 1"

    monkeypatch.setattr(supervised, "selection_warning", fake)
    events: list[object] = []
    result = supervised.train_classifier(SupervisedConfig(**train_kwargs), callback=events.append)
    warnings = [e.text for e in events if isinstance(e, Message) and e.level == "warning"]
    assert warnings == ["selection by f1 kept epoch 1"]
    assert [h["epoch"] for h in seen[0]] == [1, 2]  # it judged the run's whole history
    assert "warning: selection by f1 kept epoch 1" in (result.run_dir / "train.log").read_text()


def test_val_every_validates_every_kth_epoch_and_the_last() -> None:
    from ecgcli.train.loop import validates

    assert [e for e in range(1, 11) if validates(e, 10, 3)] == [3, 6, 9, 10]
    assert [e for e in range(1, 4) if validates(e, 3, 1)] == [1, 2, 3]


def test_an_epoch_that_is_not_validated_is_never_selected(train_kwargs: dict, one_torch_thread: None) -> None:
    import json

    from ecgcli.train import supervised

    cfg = SupervisedConfig(**{**train_kwargs, "epochs": 3, "val_every": 2, "select_metric": "auroc"})
    result = supervised.train_classifier(cfg)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    history = metrics["history"]
    assert ["auroc" in h for h in history] == [False, True, True]  # epochs 2 and 3 (the last)
    assert not history[0]["best"]
    assert metrics["best_epoch"] in (2, 3)
    # the warning judges the validated epochs only: epoch 1 has no AUROC to trail
    history[1]["auroc"], history[2]["auroc"] = 0.5, 0.9
    assert "kept epoch 2 (fold-9 AUROC 0.500) while epoch 3 reached 0.900" in selection_warning(
        history, 2, "f1"
    )


def test_val_every_below_one_is_one_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from ecgcli.cli.app import app

    args = [
        "train",
        "supervised",
        "--val-every",
        "0",
        "--data-root",
        str(tmp_path / "none"),
        "--device",
        "cpu",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines() == ["error: --val-every must be at least 1, got 0"]
