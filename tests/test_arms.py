"""``ecg compare --arm``: each arm is, at each label fraction, its configuration with the best
mean fold-9 macro AUROC; fold 10 plays no part (the CLI path is in tests/test_compare.py)."""

from __future__ import annotations

import pytest

from ecgcli.errors import ConfigError
from ecgcli.experiments.arms import parse_arms, select_arms
from ecgcli.experiments.compare import compare, to_dict
from ecgcli.experiments.inputs import Method

SEEDS = [1, 2, 3]


def _method(name: str, kind: str, fraction: float, val: float, test: float) -> Method:
    """Three seeds scoring ``val`` on fold 9 and ``test`` on fold 10 (+0.01 per seed)."""
    return Method(
        name,
        kind,
        fraction,
        "multiseed",
        "x",
        ["NORM", "MI"],
        {"n": 10},
        list(SEEDS),
        scores=[{"auroc": test + 0.01 * k, "f1": 0.5} for k in range(3)],
        val=[{"auroc": val + 0.01 * k} for k in range(3)],
    )


def _grid() -> list[Method]:
    """Two scratch recipes and two fine-tuning recipes at 1% and 10%: the best on fold 9 is not
    the best on fold 10, and the best scratch recipe changes with the fraction."""
    return [
        _method("bench", "supervised", 0.01, val=0.60, test=0.80),
        _method("small-lr", "supervised", 0.01, val=0.70, test=0.70),
        _method("ft-a", "finetune", 0.01, val=0.75, test=0.74),
        _method("ft-b", "finetune", 0.01, val=0.72, test=0.90),
        _method("bench", "supervised", 0.1, val=0.85, test=0.84),
        _method("small-lr", "supervised", 0.1, val=0.80, test=0.86),
        _method("ft-a", "finetune", 0.1, val=0.88, test=0.87),
        _method("ft-b", "finetune", 0.1, val=0.88, test=0.95),
    ]


ARMS = ["scratch=bench", "scratch=small-lr", "pretrained=ft-a", "pretrained=ft-b"]


def test_each_arm_is_its_best_configuration_on_fold_9_at_each_fraction() -> None:
    methods = _grid()
    arms = parse_arms(ARMS, [m.name for m in methods])
    assert arms == {"scratch": ["bench", "small-lr"], "pretrained": ["ft-a", "ft-b"]}
    chosen, choices = select_arms(methods, arms)
    picked = {(c.arm, c.label_fraction): c.chosen for c in choices}
    # by validation, never by test: small-lr at 1%, bench at 10%; a tie keeps the first listed
    assert picked == {
        ("scratch", 0.01): "small-lr",
        ("pretrained", 0.01): "ft-a",
        ("scratch", 0.1): "bench",
        ("pretrained", 0.1): "ft-a",
    }
    assert [(m.name, m.label_fraction) for m in chosen] == [
        ("scratch", 0.01), ("pretrained", 0.01), ("scratch", 0.1), ("pretrained", 0.1)
    ]  # fmt: skip
    scratch_1 = next(c for c in choices if c.arm == "scratch" and c.label_fraction == 0.01)
    assert scratch_1.val_mean == pytest.approx(0.71) and scratch_1.candidates["bench"] == pytest.approx(0.61)
    assert chosen[0].scores == methods[1].scores and chosen[0].seeds == SEEDS  # small-lr's own runs


def test_the_comparison_runs_on_the_arms() -> None:
    comp = compare(_grid(), arms=ARMS)
    assert comp.baseline == "scratch" and {r.method.name for r in comp.rows} == {"scratch", "pretrained"}
    at_10 = {r.method.name: r for r in comp.rows if r.method.label_fraction == 0.1}
    # pretrained (ft-a: 0.87-0.89) against scratch (bench: 0.84-0.86) at 10%, in percent
    assert at_10["pretrained"].delta_pct["auroc"] == pytest.approx(100 * (0.88 - 0.85) / 0.85)
    factor = next(f for f in comp.efficiency["auroc"] if f.method == "pretrained" and f.label_fraction == 0.1)
    # scratch's 0.85 at 10% is reached on ft-a's curve from 0.75 (1%) to 0.88 (10%), in log fraction
    assert factor.crossing.bound == "exact"
    assert factor.crossing.factor == pytest.approx(10 ** (1 - (0.85 - 0.75) / (0.88 - 0.75)))
    doc = to_dict(comp)
    assert [c["chosen"] for c in doc["selection"]["choices"]] == ["small-lr", "ft-a", "bench", "ft-a"]
    assert "fold 10 takes no part" in doc["selection"]["rule"]


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        (["scratch"], "write ARM=CONFIG"),
        (["scratch="], "write ARM=CONFIG"),
        (["scratch=nope"], "'nope' is not among the methods"),
        (["a=bench", "b=bench"], "already a candidate of arm 'a'"),
        (["bench=small-lr"], "also a method's"),
    ],
)
def test_bad_arms_are_refused(arms: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compare(_grid(), arms=arms)


def test_an_arm_without_validation_scores_cannot_be_chosen() -> None:
    methods = _grid()
    for m in methods:
        m.val = [{} for _ in m.val]
    with pytest.raises(ConfigError, match="no candidate has fold-9 scores"):
        compare(methods, arms=ARMS)
