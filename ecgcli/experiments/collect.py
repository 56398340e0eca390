"""``ecg multiseed --collect``: the grid of an output folder, read back from the folder alone.

Collecting trains nothing, so it needs no flag but ``--out``: the grid (configurations,
seeds, label fractions, baseline, and every configuration's options) comes from
``multiseed.json`` when that is there, else from the ``configuration.json`` that a grid run
writes into each configuration's folder (``OUT/<slug>/``) before training. So deleting
``multiseed.json`` (as a corrupt-file error advises) loses nothing, and a bare ``--collect``
never records a default grid over someone else's runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecgcli.errors import ConfigError
from ecgcli.experiments.grid import Grid
from ecgcli.experiments.results import load_results, results_path
from ecgcli.experiments.spec import parse_spec
from ecgcli.files import write_json_atomic

CONFIGURATION_FILE = "configuration.json"
FORMAT = "ecgcli-multiseed-configuration"


def write_configurations(grid: Grid) -> None:
    """Record each configuration of ``grid`` in its folder: what ``--collect`` rebuilds from.
    Rewritten on every run, so a grid that grew is recorded whole."""
    for position, spec in enumerate(grid.configs):
        folder = Path(grid.out) / spec.slug
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            folder / CONFIGURATION_FILE,
            {
                "format": FORMAT,
                "version": 1,
                "spec": spec.spec,
                "name": spec.name,
                "position": position,
                "seeds": list(grid.seeds),
                "label_fractions": list(grid.label_fractions),
                "baseline": grid.baseline,
                "kwargs": grid.config_kwargs(spec),
            },
        )


def grid_on_disk(out: Path) -> Grid:
    """The grid last run into ``out``: from multiseed.json, else from the configuration files.
    Nothing there to say what the grid was is one line."""
    out = Path(out)
    if results_path(out).exists():
        desc = load_results(results_path(out))["grid"]
        configs = [(c["spec"], c.get("options", {})) for c in desc.get("configs", [])]
        return _grid(
            out, configs, desc.get("seeds", []), desc.get("label_fractions", []), desc.get("baseline")
        )
    found = []
    for path in sorted(out.glob(f"*/{CONFIGURATION_FILE}")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{path}: unreadable; rerun the original command to rewrite it") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f"{path}: not an ecgcli multiseed configuration file")
        shapes = {"spec": str, "name": str, "seeds": list, "label_fractions": list, "kwargs": dict}
        bad = [k for k, kind in shapes.items() if not isinstance(doc.get(k), kind)]
        if bad:
            raise ConfigError(f"{path}: missing or malformed {', '.join(bad)}; rerun the original command")
        found.append(doc)
    if not found:
        raise ConfigError(
            f"{out}: nothing to collect (no {results_path(out).name} and no configuration folders "
            "written by `ecg multiseed`); rerun the grid's own command without --collect: it reuses "
            "every finished run and writes both"
        )
    try:
        found.sort(key=lambda d: int(d.get("position", 0)))
        seeds = sorted({int(s) for d in found for s in d["seeds"]})
        fractions = sorted({float(f) for d in found for f in d["label_fractions"]})
    except (TypeError, ValueError):
        raise ConfigError(
            f"{out}: a {CONFIGURATION_FILE} holds a seed, fraction or position that is not a number; "
            "rerun the original command"
        ) from None
    names = {d["name"] for d in found}
    baseline = next((d["baseline"] for d in found if d.get("baseline") in names), found[0]["name"])
    return _grid(out, [(d["spec"], d["kwargs"]) for d in found], seeds, fractions, baseline)


def _grid(
    out: Path,
    configs: list[tuple[str, dict[str, Any]]],
    seeds: list[int],
    fractions: list[float],
    baseline: str | None,
) -> Grid:
    if not configs or not seeds or not fractions:
        raise ConfigError(f"{out}: its grid has no configurations, seeds or label fractions to collect")
    specs = [parse_spec(text) for text, _ in configs]
    fixed = {spec.name: dict(kwargs) for spec, (_, kwargs) in zip(specs, configs, strict=True)}
    return Grid(
        configs=tuple(specs),
        seeds=tuple(int(s) for s in seeds),
        label_fractions=tuple(float(f) for f in fractions),
        common={},
        sets={},
        baseline=baseline if baseline in fixed else specs[0].name,
        out=out,
        fixed=fixed,
    )
