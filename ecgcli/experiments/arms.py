"""Choosing each arm's configuration on fold 9 (``ecg compare --arm``).

A fair label-efficiency comparison pits the *strongest* configuration of each arm against the
other at every label fraction, not one recipe applied everywhere: trained from scratch on 1% of
PTB-XL's labels, the benchmark recipe that is best at 100% can be far from the best a small
search finds. An **arm** is a name and the configurations that may stand for it (learning rates,
epochs, encoders, ...), all run on the same seeds in one grid. At each label fraction, the arm
is the configuration with the highest mean **fold-9** (validation) macro AUROC over its seeds;
fold 10 plays no part in the choice, so the test scores that follow stay unbiased. Every arm
gets the same kind of search (the caller lists its candidates), and the choice, with every
candidate's validation mean, is reported beside the results.

The chosen configuration becomes a method named after the arm, with its seeds and scores, so
the rest of ``ecg compare`` (deltas, curves, label-efficiency factors with their per-seed
intervals) runs on the arms unchanged. A seed fixes the labelled subset for every configuration
of a grid, so arms chosen from one grid stay paired.

Pure Python over :class:`ecgcli.experiments.inputs.Method`: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ecgcli.errors import ConfigError
from ecgcli.experiments.inputs import Method

#: The validation metric that chooses (macro AUROC: threshold-free, as PTB-XL's benchmark selects).
SELECT_METRIC = "auroc"


@dataclass(frozen=True)
class Choice:
    """What an arm is at one label fraction, and what it was chosen from."""

    arm: str
    label_fraction: float
    chosen: str
    val_mean: float
    #: every candidate run at this fraction -> its mean fold-9 macro AUROC (None: no val scores)
    candidates: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def candidates_text(self, sep: str = ", ", name: Callable[[str], str] = str) -> str:
        """The candidates and their fold-9 AUROC as one line ("cfg 0.843, cfg2 n/a"), the way
        every table shows them; ``name`` escapes a name for its format."""
        return sep.join(f"{name(n)} {'n/a' if v is None else f'{v:.3f}'}" for n, v in self.candidates.items())


def parse_arms(specs: Sequence[str], names: Sequence[str]) -> dict[str, list[str]]:
    """``ARM=CONFIG`` options (repeatable; one arm may list several) as arm -> candidates, in the
    order given. Each CONFIG must be a method of the inputs, and belong to one arm only."""
    arms: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    known = set(names)
    for spec in specs:
        arm, sep, config = spec.partition("=")
        arm, config = arm.strip(), config.strip()
        if not sep or not arm or not config:
            raise ConfigError(f"--arm {spec!r}: write ARM=CONFIG, e.g. --arm scratch=bce+standard")
        if config not in known:
            raise ConfigError(f"--arm {spec!r}: {config!r} is not among the methods: {', '.join(names)}")
        if config in owner and owner[config] != arm:
            raise ConfigError(f"--arm {spec!r}: {config!r} is already a candidate of arm {owner[config]!r}")
        if arm in known:
            raise ConfigError(f"--arm {spec!r}: the arm's name {arm!r} is also a method's; pick another")
        owner[config] = arm
        if config not in arms.setdefault(arm, []):
            arms[arm].append(config)
    return arms


def _val_mean(method: Method) -> float | None:
    values = [v.get(SELECT_METRIC) for v in method.val]
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(values) / len(values) if values else None


def select_arms(methods: Sequence[Method], arms: dict[str, list[str]]) -> tuple[list[Method], list[Choice]]:
    """At each label fraction, each arm's candidate with the best mean fold-9 macro AUROC, as a
    method named after the arm; and the choices. A fraction at which none of an arm's candidates
    ran leaves the arm out there. Ties keep the candidate listed first."""
    if not arms:
        raise ConfigError("no arm to choose")
    chosen: list[Method] = []
    choices: list[Choice] = []
    for fraction in sorted({m.label_fraction for m in methods}):
        at = {m.name: m for m in methods if m.label_fraction == fraction}
        for arm, candidates in arms.items():
            present = [at[c] for c in candidates if c in at]
            if not present:
                continue
            means = {m.name: _val_mean(m) for m in present}
            scored = [m for m in present if means[m.name] is not None]
            if not scored:
                raise ConfigError(
                    f"arm {arm!r} at label fraction {fraction:g}: no candidate has fold-9 scores to choose by"
                )
            best = max(scored, key=lambda m: means[m.name])  # max keeps the first of equals
            chosen.append(replace(best, name=arm, label=""))
            choices.append(Choice(arm, fraction, best.name, float(means[best.name]), means))
    if not chosen:
        raise ConfigError("none of the arms' configurations is among the inputs")
    return chosen, choices
