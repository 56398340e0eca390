"""A grid: configurations x label fractions x seeds, each cell one ordinary training run.

A seed fixes the labelled subset, the initialisation and the shuffling, so two configurations
with the same seed and fraction saw the same labelled records: their scores pair up, and they
are compared with paired tests.

Options are applied in this order, later ones winning: ``SupervisedConfig`` defaults, the
grid's common options (``--epochs`` etc.), ``--set KEY=VALUE``, the spec's own
``[KEY=VALUE]``. ``encoder_lr`` from the common options only applies to ``finetune:`` specs;
a fine-tune's ``width`` defaults to the checkpoint's. Every spec and option is validated, and
every encoder checkpoint loaded once, before anything is trained.

``OUT/<slug>/lf<fraction>/seed<seed>/`` is a cell's run directory. Rerunning with the same
``OUT`` may *grow* the grid (more seeds, configurations or label fractions); leaving out part
of the grid already there is refused (its results would vanish from multiseed.json), and so
is changing a training option of a configuration already there (old runs would silently mix
with new ones), or a cell whose ``config.json`` does not match the configuration it would be
trained with.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcli.errors import ConfigError
from ecgcli.experiments.spec import (
    DEFAULT_CONFIGS,
    ConfigSpec,
    _supervised_fields,
    _typed,
    parse_assignments,
    parse_spec,
)
from ecgcli.train.config import SupervisedConfig

# allow_invalid permits a run, it does not change what the run computes
# nor does where a run is logged (tracker, mlflow_tracking_uri, tracker_tags)
_NOT_IDENTITY = {
    *("runs_dir", "run_dir", "name", "out", "device", "workers", "cache_dir", "allow_invalid"),
    *("tracker", "mlflow_tracking_uri", "tracker_tags"),
}
_CELL_FIELDS = {"seed", "label_fraction"}


@dataclass(frozen=True)
class Cell:
    spec: ConfigSpec
    label_fraction: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.spec.name} lf{self.label_fraction:g} seed {self.seed}"

    def path(self, out: Path) -> Path:
        return Path(out) / self.spec.slug / f"lf{self.label_fraction:g}" / f"seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """A validated grid: built by :func:`build_grid`, run by :func:`run_multiseed`."""

    configs: tuple[ConfigSpec, ...]
    seeds: tuple[int, ...]
    label_fractions: tuple[float, ...]
    common: dict[str, Any]  # SupervisedConfig keyword arguments shared by every cell
    sets: dict[str, Any]  # typed --set overrides
    baseline: str
    out: Path
    given: frozenset[str] = frozenset()  # common options the user set (a recipe leaves them)
    #: configuration name -> its complete run options, read back from OUT (``--collect``):
    #: used as they are, so the grid is the one that trained the runs, whatever the flags now
    fixed: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Seed-major order, so that paired comparisons exist as early as possible."""
        return [
            Cell(spec, lf, seed)
            for lf in self.label_fractions
            for seed in self.seeds
            for spec in self.configs
        ]

    def config_kwargs(self, spec: ConfigSpec) -> dict[str, Any]:
        """SupervisedConfig (FeaturesConfig for ``features:``) arguments of ``spec``, without seed
        and label fraction."""
        if spec.name in self.fixed:
            return {k: v for k, v in self.fixed[spec.name].items() if k not in _CELL_FIELDS}
        if spec.kind == "features":
            return self._features_kwargs(spec)
        kw = dict(self.common)
        if spec.kind != "finetune":
            kw.pop("encoder_lr", None)
        own = _typed(spec.overrides, f"configuration {spec.spec!r}", spec)
        kw.update(self.sets)
        kw.update(own)
        given = set(self.given) | set(self.sets) | set(own)
        if spec.kind == "supervised":
            kw["loss"], kw["balance_strategy"] = spec.loss, spec.strategy
            given |= {"loss", "balance_strategy"}
        else:
            kw["ssl_checkpoint"] = spec.checkpoint
            kw["freeze_encoder"] = spec.kind == "probe"
            if spec.checkpoint is not None and "width" not in self.sets and "width" not in own:
                kw["width"] = None  # the checkpoint's (a random encoder: the options', or its default)
        return SupervisedConfig.resolve(kw, given)

    def _features_kwargs(self, spec: ConfigSpec) -> dict[str, Any]:
        """Only the options a handcrafted-feature run has: network options do not apply."""
        from ecgcli.train.config import FeaturesConfig

        known = {f.name for f in dataclasses.fields(FeaturesConfig)}
        kw = {k: v for k, v in {**self.common, **self.sets}.items() if k in known}
        kw.update(_typed(spec.overrides, f"configuration {spec.spec!r}", spec))
        kw["classifier"] = spec.classifier
        return kw

    def cell_config(self, cell: Cell):
        from ecgcli.train.config import FeaturesConfig, SupervisedConfig

        kw = self.config_kwargs(cell.spec)
        path = cell.path(self.out)
        kw.update(
            seed=cell.seed,
            label_fraction=cell.label_fraction,
            run_dir=str(path),
            runs_dir=str(self.out),
            name=f"{cell.spec.slug}-lf{cell.label_fraction:g}-s{cell.seed}",
            out=None,
        )
        if cell.spec.kind == "features":  # no epochs: not logged to a tracker
            return FeaturesConfig(**kw)
        # each cell its own tracker run, tagged with its grid and place; MLflow's store beside the grid
        kw["tracker_tags"] = {
            "ecgcli.grid": self.out.resolve().name,
            "arm": cell.spec.name,
            "seed": str(cell.seed),
            "label_fraction": f"{cell.label_fraction:g}",
        }
        if kw.get("tracker") == "mlflow" and not kw.get("mlflow_tracking_uri"):
            kw["mlflow_tracking_uri"] = str(self.out.parent / "mlruns")
        return SupervisedConfig(**kw)

    def describe(self) -> dict[str, Any]:
        """The grid as stored in multiseed.json (options: what each configuration trains with)."""
        return {
            "configs": [
                {
                    "name": s.name,
                    "spec": s.spec,
                    "slug": s.slug,
                    "kind": s.kind,
                    "options": identity(self.cell_config(Cell(s, self.label_fractions[0], 0)).to_dict()),
                }
                for s in self.configs
            ],
            "seeds": list(self.seeds),
            "label_fractions": list(self.label_fractions),
            "baseline": self.baseline,
        }


def identity(config: dict[str, Any], cell: bool = False) -> dict[str, Any]:
    """The fields of a run configuration that change what it computes (``cell``: with the
    seed and label fraction too)."""
    drop = _NOT_IDENTITY | (set() if cell else _CELL_FIELDS)
    return {k: v for k, v in config.items() if k not in drop}


def build_grid(
    configs: Sequence[str] | None,
    seeds: Sequence[int],
    label_fractions: Sequence[float],
    common: dict[str, Any],
    sets: Sequence[str] = (),
    out: Path | str = "runs/multiseed",
    baseline: str | None = None,
    check_checkpoints: bool = True,
    given: Iterable[str] = (),
) -> Grid:
    """Parse and validate everything before any training: one clear line per problem.

    ``common`` holds SupervisedConfig arguments shared by every cell (settings such as
    ``data_root`` and the pass-through options); ``sets`` are ``KEY=VALUE`` strings.
    """
    from ecgcli.train.config import SupervisedConfig

    specs = [parse_spec(c) for c in (configs or DEFAULT_CONFIGS)]
    if not specs:
        raise ConfigError("no configuration given")
    for attr, what in (("name", "name"), ("slug", "folder name")):
        seen: dict[str, str] = {}
        for s in specs:
            value = getattr(s, attr)
            if value in seen:
                raise ConfigError(
                    f"configurations {seen[value]!r} and {s.spec!r} have the same {what} {value!r}"
                )
            seen[value] = s.spec
    if not seeds:
        raise ConfigError("no seeds given")
    if len(set(seeds)) != len(seeds) or any(int(s) != s or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    if not label_fractions:
        raise ConfigError("no label fraction given")
    known = _supervised_fields()
    unknown = [k for k in common if k not in known]
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}")
    common = dict(common)
    if common.get("data_root"):
        common["data_root"] = str(Path(common["data_root"]).expanduser().resolve())
    grid = Grid(
        configs=tuple(specs),
        seeds=tuple(int(s) for s in seeds),
        label_fractions=tuple(float(f) for f in label_fractions),
        common=common,
        sets=_typed(parse_assignments(sets), "--set"),
        baseline="",
        out=Path(out),
        given=frozenset(given),
    )
    names = [s.name for s in specs]
    if baseline is None:
        baseline = next((s.name for s in specs if s.kind == "supervised"), specs[0].name)
    elif baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not one of the configurations: {', '.join(names)}")
    grid = dataclasses.replace(grid, baseline=baseline)
    for spec in specs:
        for lf in grid.label_fractions:
            cfg = grid.cell_config(Cell(spec, lf, grid.seeds[0]))
            try:
                cfg.check()
            except ConfigError as exc:
                raise ConfigError(f"configuration {spec.spec!r}: {exc}") from None
        if spec.checkpoint is not None and check_checkpoints:
            from ecgcli.train.finetune import pretrained_encoder

            pretrained_encoder(SupervisedConfig(**{**grid.config_kwargs(spec), "seed": grid.seeds[0]}))
    return grid


def check_compatible(grid: Grid, previous: dict[str, Any], where: Path, exact: bool = False) -> None:
    """Refuse to mix runs of different options under one --out, or to drop part of the grid
    from its results file: a grid may grow (configurations, seeds, fractions), never shrink.
    ``exact`` (shards, which must all deal out the same cells): it may not grow either."""
    old = {c["name"]: c for c in previous["grid"].get("configs", [])}
    if exact:
        mine = grid.describe()
        diff = [
            what
            for what, key in (
                ("configurations", "configs"),
                ("seeds", "seeds"),
                ("label fractions", "label_fractions"),
            )
            if json.loads(json.dumps(mine[key])) != previous["grid"].get(key)
        ]
        if diff:
            raise ConfigError(
                f"{where} was made by a different grid (other {', '.join(diff)}); every shard of a grid "
                "needs the same configurations, seeds, label fractions and options (or another --out)"
            )
    missing = [
        f"{what} {', '.join(str(v) for v in gone)}"
        for what, gone in (
            ("configurations", [n for n in old if n not in {s.name for s in grid.configs}]),
            ("seeds", [s for s in previous["grid"].get("seeds", []) if s not in grid.seeds]),
            (
                "label fractions",
                [f for f in previous["grid"].get("label_fractions", []) if f not in grid.label_fractions],
            ),
        )
        if gone
    ]
    if missing:
        raise ConfigError(
            f"{where} holds a larger grid (also {'; '.join(missing)}); rerun with all of it "
            "(a grid may grow, never shrink) or use another --out"
        )
    for spec in grid.describe()["configs"]:
        before = old.get(spec["name"])
        if before is None:
            continue
        diff = _diff(before.get("options", {}), spec["options"])
        if diff:
            raise ConfigError(
                f"{where} holds configuration {spec['name']!r} trained with {diff}; "
                "use another --out, or the same options"
            )


def _diff(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``"epochs=2 (now 3), lr=..."`` for the keys present in both that differ."""
    parts = [
        f"{k}={stored[k]!r} (now {wanted[k]!r})" for k in wanted if k in stored and stored[k] != wanted[k]
    ]
    return ", ".join(parts)


def check_cell_config(grid: Grid, cell: Cell) -> None:
    path = cell.path(grid.out)
    try:
        stored = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: its config.json is unreadable ({exc}); delete the directory to retrain"
        ) from None
    diff = _diff(identity(stored, cell=True), identity(grid.cell_config(cell).to_dict(), cell=True))
    if diff:
        raise ConfigError(f"{path} was trained with {diff}; use another --out, or the same options")
