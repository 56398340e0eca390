"""``ecg ablate augmentations``: which SSL augmentation earns its place, with paired statistics.

One encoder is pretrained with every augmentation (``all``), one with each ablated
augmentation left out in turn (``no-<aug>``, i.e. ``--no-aug <aug>``) and one with none
(``none``). Every encoder is then fine-tuned on the same seeds and label fraction in one
multiseed grid (:mod:`ecgcli.experiments.runner`) with ``finetune:all`` as its baseline, so a
seed's fine-tunes share their labelled subset and pair up. An augmentation's *effect* is
``all`` minus ``no-<aug>``: the mean paired difference in fold-10 macro AUROC over seeds, its
95% t interval and the paired t-test p-value, read from the grid's ``multiseed.json``
(computed there as configuration minus baseline, so the sign is flipped here). A positive
effect means leaving the augmentation out hurt.

Layout of ``OUT``::

    pretrain/<variant>/      one `ecg train ssl` run per variant (model.safetensors, metrics.json)
    finetune/                the multiseed grid (multiseed.json, <config>/lf<f>/seed<s>/)
    ablation.json, ablation.md   the effects table

Rerunning the same command trains nothing that finished: a pretraining run with metrics.json
is reused, one with a saved epoch resumes (:func:`ecgcli.train.run.continue_run`), and the grid
reuses its finished cells. A finished run trained with other options is refused, not mixed in.

Note the design's limit: each variant is pretrained once (one SSL seed), so the paired tests
measure the fine-tuning seeds' spread around that one encoder, not the pretraining's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

from ecgcli.errors import ConfigError, Interrupted
from ecgcli.events import Callback, Event, ignore
from ecgcli.experiments.grid import Grid, build_grid
from ecgcli.experiments.runner import CellEvent, run_multiseed
from ecgcli.files import write_json_atomic, write_text_atomic

ALL, NONE = "all", "none"
REPORT_JSON, REPORT_MD = "ablation.json", "ablation.md"
#: The metric the effects table reports (its key in multiseed.json).
METRIC = "auroc"
#: SSLConfig fields that do not change what a pretraining computes (paths, hardware, tracker).
_NOT_IDENTITY = {
    *("runs_dir", "run_dir", "name", "out", "device", "workers", "cache_dir", "allow_invalid"),
    *("tracker", "mlflow_tracking_uri", "tracker_tags"),
}


@dataclass(frozen=True)
class PretrainStarted(Event):
    """Pretraining of ``variant`` (``index`` of ``total``) starts: ``action`` is train or resume."""

    variant: str
    index: int
    total: int
    action: str


@dataclass(frozen=True)
class PretrainDone(Event):
    """Pretraining of ``variant`` finished (``reused``: it had finished before this invocation)."""

    variant: str
    probe_auroc: float | None
    seconds: float
    reused: bool


@dataclass(frozen=True)
class Effect:
    """One augmentation's paired effect: ``all`` minus ``no-<aug>`` (``none``: all minus none)."""

    augmentation: str
    config: str
    n_pairs: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AblationPlan:
    """A validated ablation: the pretraining of each variant and the fine-tuning grid."""

    out: Path
    augmentations: tuple[str, ...]  # the ablated ones
    ssl: dict[str, Any]  # SSLConfig arguments shared by every variant
    finetune: dict[str, Any]  # SupervisedConfig arguments shared by every fine-tune
    seeds: tuple[int, ...]
    label_fraction: float
    given: frozenset[str] = frozenset()

    def variants(self) -> list[tuple[str, list[str]]]:
        """``(name, augmentations switched off)``: all, no-<aug> for each ablated one, none."""
        from ecgcli.ssl.augment import AUGMENTATIONS

        return [(ALL, []), *((f"no-{a}", [a]) for a in self.augmentations), (NONE, list(AUGMENTATIONS))]

    def pretrain_dir(self, variant: str) -> Path:
        return self.out / "pretrain" / variant

    def ssl_config(self, variant: str, disabled: list[str]) -> Any:
        from ecgcli.train.config import SSLConfig

        tracked: dict[str, Any] = {
            "tracker_tags": {"ecgcli.ablation": self.out.resolve().name, "arm": f"pretrain:{variant}"}
        }
        if self.ssl.get("tracker") == "mlflow" and not self.ssl.get("mlflow_tracking_uri"):
            tracked["mlflow_tracking_uri"] = str(self.out / "mlruns")  # the fine-tunes' store too
        return SSLConfig(
            **{
                **self.ssl,
                "no_aug": list(disabled),
                "runs_dir": str(self.out / "pretrain"),
                "run_dir": str(self.pretrain_dir(variant)),
                "name": variant,
                "out": None,
                **tracked,
            }
        )

    def grid(self, check_checkpoints: bool = True) -> Grid:
        specs = [f"finetune:{v}={self.pretrain_dir(v) / 'model.safetensors'}" for v, _ in self.variants()]
        return build_grid(
            specs,
            self.seeds,
            (self.label_fraction,),
            self.finetune,
            out=self.out / "finetune",
            baseline=f"finetune:{ALL}",
            check_checkpoints=check_checkpoints,
            given=self.given,
        )


def parse_augmentations(text: str | None) -> tuple[str, ...]:
    """``"jitter,time-warp"`` -> ``("jitter", "time_warp")``; None or empty: every augmentation."""
    from ecgcli.ssl.augment import AUGMENTATIONS

    if text is None or not text.strip():
        return AUGMENTATIONS
    names = [n.strip().lower().replace("-", "_") for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"--augmentations: unknown augmentation {unknown[0]!r}; valid names: {', '.join(AUGMENTATIONS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError("--augmentations: an augmentation is listed twice")
    return tuple(n for n in AUGMENTATIONS if n in names)  # the policy's order


def plan_ablation(
    augmentations: Sequence[str],
    seeds: Sequence[int],
    label_fraction: float,
    ssl: dict[str, Any],
    finetune: dict[str, Any],
    out: Path,
    given: frozenset[str] = frozenset(),
) -> AblationPlan:
    """Check every pretraining and fine-tuning option before anything trains (one line each)."""
    if not augmentations:
        raise ConfigError("--augmentations: give at least one augmentation to ablate")
    if "no_aug" in ssl:
        raise ConfigError("the ablation chooses --no-aug itself; use --augmentations to pick what it ablates")
    plan = AblationPlan(
        Path(out),
        tuple(augmentations),
        dict(ssl),
        dict(finetune),
        tuple(seeds),
        label_fraction,
        frozenset(given),
    )
    for variant, disabled in plan.variants():
        try:
            plan.ssl_config(variant, disabled).check()
        except ConfigError as exc:
            raise ConfigError(f"pretraining: {exc}") from None
    plan.grid(check_checkpoints=False)  # fine-tuning options: one line each, before any training
    return plan


def run_ablation(plan: AblationPlan, callback: Callback = ignore, jobs: int = 1) -> dict[str, Any]:
    """Pretrain every unfinished variant, fine-tune every unfinished cell, write the report;
    returns the report document (see :func:`build_report`).

    Raises :class:`~ecgcli.errors.Interrupted` on Ctrl-C after saving what finished:
    rerunning the same command continues from there.
    """
    variants = plan.variants()
    data = None
    for i, (variant, disabled) in enumerate(variants, 1):
        data = _pretrain(plan, variant, disabled, (i, len(variants)), data, callback)
    try:
        doc = run_multiseed(plan.grid(), callback, jobs)
    except Interrupted as exc:
        raise Interrupted(f"{exc} (or rerun the same `ecg ablate augmentations` command)") from None
    return write_report(plan, doc)


def _pretrain(
    plan: AblationPlan,
    variant: str,
    disabled: list[str],
    position: tuple[int, int],
    data: Any,
    callback: Callback,
) -> Any:
    """Reuse, resume or train the pretraining of ``variant``; returns the shared training
    data (loaded by the first variant that trains from scratch, reused by the next)."""
    from ecgcli.storage.runs import RunDir
    from ecgcli.train.run import continue_run
    from ecgcli.train.ssl import resume_ssl, train_ssl

    cfg = plan.ssl_config(variant, disabled)
    path = plan.pretrain_dir(variant)
    _check_stored(path, cfg)
    key = f"pretrain {variant}"

    def wrapped(event: Event) -> None:
        callback(CellEvent(key, event))

    status = RunDir(path).status()
    if status != "finished":
        callback(PretrainStarted(variant, *position, "resume" if status == "resume" else "train"))
        if data is None and status != "resume":
            data = _shared_data(cfg, callback)
    t0 = time.perf_counter()
    try:
        action, _ = continue_run(
            path,
            start=lambda: train_ssl(cfg, wrapped, data=data),
            resume=lambda: resume_ssl(path, wrapped),
        )
    except Interrupted:
        raise Interrupted(
            f"interrupted while pretraining {variant}; rerun the same `ecg ablate augmentations` "
            "command to continue (finished runs are reused, this one resumes from its last epoch)"
        ) from None
    metrics = RunDir(path).read_json("metrics.json") or {}
    probe = (metrics.get("final_probe") or {}).get("probe_auroc")
    callback(PretrainDone(variant, probe, time.perf_counter() - t0, action == "reused"))
    return data


def _shared_data(cfg: Any, callback: Callback) -> Any:
    """Tables, split and cache, loaded once for every variant's pretraining (same seed)."""
    from ecgcli.train.data import load_training_data

    return load_training_data(cfg, cfg.probe_fraction, callback)


def _check_stored(path: Path, cfg: Any) -> None:
    """Refuse to reuse or resume a pretraining that was started with other options."""
    from ecgcli.storage.runs import RunDir

    run = RunDir(path)
    if run.status() not in ("finished", "resume"):
        return
    stored = run.read_config()
    wanted = cfg.to_dict()
    diff = [
        f"{k}={stored.get(k)!r} (now {v!r})"
        for k, v in wanted.items()
        if k not in _NOT_IDENTITY and k in stored and stored[k] != v
    ]
    if diff:
        raise ConfigError(
            f"{path} was pretrained with {', '.join(diff[:3])}; use another --out, or the same options"
        )


def effects(plan: AblationPlan, doc: dict[str, Any]) -> list[Effect]:
    """Each ablated augmentation's paired effect (and all vs none last), largest effect first.

    multiseed.json compares configuration minus baseline (``finetune:all``); the effect of an
    augmentation is all minus leave-one-out, so the difference and its interval are negated.
    """
    by_config = {c["config"]: c for c in doc.get("comparisons") or []}
    rows: list[Effect] = []
    for variant, _ in plan.variants()[1:]:
        config = f"finetune:{variant}"
        c = by_config.get(config) or {}
        t = (c.get("tests") or {}).get(METRIC) or {}

        def neg(v: float | None) -> float | None:
            return None if v is None else -float(v)

        rows.append(
            Effect(
                augmentation=variant[3:] if variant.startswith("no-") else f"({ALL} vs {NONE})",
                config=config,
                n_pairs=int(c.get("n_pairs") or 0),
                mean=neg(t.get("mean_diff")),
                ci_low=neg(t.get("diff_ci_high")),
                ci_high=neg(t.get("diff_ci_low")),
                p=t.get("t_p"),
            )
        )
    ablated = [r for r in rows if r.config != f"finetune:{NONE}"]
    ablated.sort(key=lambda r: (r.mean is None, -(r.mean or 0.0)))
    return ablated + [r for r in rows if r.config == f"finetune:{NONE}"]


def build_report(plan: AblationPlan, doc: dict[str, Any]) -> dict[str, Any]:
    """The ablation's results: options, each variant's pretraining and the effects table."""
    from ecgcli.storage.runs import RunDir

    pretrain = {}
    for variant, disabled in plan.variants():
        m = RunDir(plan.pretrain_dir(variant)).read_json("metrics.json") or {}
        pretrain[variant] = {
            "disabled": disabled,
            "run_dir": str(plan.pretrain_dir(variant)),
            "final_probe_auroc": (m.get("final_probe") or {}).get("probe_auroc"),
        }
    return {
        "method": plan.ssl.get("method", "simclr"),
        "augmentations": list(plan.augmentations),
        "seeds": list(plan.seeds),
        "label_fraction": plan.label_fraction,
        "metric": f"test {METRIC} (fold 10 macro AUROC)",
        "effect": "all minus no-<aug>: mean paired difference over seeds, 95% t-CI, paired t-test p",
        "complete": bool(doc.get("complete")),
        "pretraining": pretrain,
        "multiseed": str(plan.out / "finetune" / "multiseed.json"),
        "effects": [e.to_dict() for e in effects(plan, doc)],
    }


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown. Stays in the core (unlike the comparison formats in
    :mod:`ecgcli.cli.formats`): ``ablation.md`` is a product of :func:`write_report`."""

    def num(v: float | None, fmt: str = "{:+.4f}") -> str:
        return "—" if v is None else fmt.format(v)

    lines = [
        f"# Augmentation ablation ({report['method']}, {report['label_fraction']:.0%} of the labels, "
        f"seeds {', '.join(map(str, report['seeds']))})",
        "",
        f"Effect = {report['effect']}; metric: {report['metric']}. Positive: leaving it out hurt.",
        "",
        "| augmentation | pairs | effect | 95% CI | p (paired t) |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in report["effects"]:
        ci = "—" if e["ci_low"] is None else f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]"
        p = "—" if e["p"] is None else ("<0.001" if e["p"] < 0.001 else f"{e['p']:.3f}")
        lines.append(f"| {e['augmentation']} | {e['n_pairs']} | {num(e['mean'])} | {ci} | {p} |")
    return "\n".join(lines) + "\n"


def write_report(plan: AblationPlan, doc: dict[str, Any]) -> dict[str, Any]:
    report = build_report(plan, doc)
    write_json_atomic(plan.out / REPORT_JSON, report)
    write_text_atomic(plan.out / REPORT_MD, to_markdown(report))
    return report


def load_report(plan: AblationPlan) -> dict[str, Any]:
    """The report of what has finished so far, trained nothing (``--show``)."""
    from ecgcli.experiments.results import load_results, results_path

    path = results_path(plan.out / "finetune")
    if not path.is_file():
        raise ConfigError(f"{plan.out}: no fine-tuning has finished yet (no {path.name})")
    return write_report(plan, load_results(path))


#: SSLConfig fields ``--ssl-set`` may not change, and why.
_SSL_OWN = {
    "no_aug": "the ablation chooses it; use --augmentations",
    "method": "use --method",
    "epochs": "use --ssl-epochs",
    "batch_size": "use --ssl-batch-size",
    "seed": "use --ssl-seed",
    "encoder": "use --encoder",
    "width": "use --width",
    "run_dir": "each variant's run is under --out",
    "runs_dir": "each variant's run is under --out",
    "name": "variants are named all, no-<aug>, none",
    "out": "each variant's checkpoint is in its run directory",
}


def parse_ssl_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--ssl-set KEY=VALUE`` strings as typed SSLConfig arguments (one line per bad key)."""
    from ecgcli.experiments.spec import _coerce, parse_assignments
    from ecgcli.train.config import SSLConfig, field_types, option_help

    known = field_types(SSLConfig)
    settable = sorted(k for k in known if option_help(SSLConfig, k) and k not in _SSL_OWN)
    out: dict[str, Any] = {}
    for key, raw in parse_assignments(items, "--ssl-set"):
        if key in _SSL_OWN:
            raise ConfigError(f"--ssl-set: {key} cannot be set here ({_SSL_OWN[key]})")
        if key not in settable:
            raise ConfigError(f"--ssl-set: unknown option {key!r}; valid keys: {', '.join(settable)}")
        if get_origin(known[key]) is list:  # e.g. pretrain_data: repeat the key for several
            out.setdefault(key, []).append(raw)
        else:
            out[key] = _coerce(key, raw, known[key], "--ssl-set")
    return out
