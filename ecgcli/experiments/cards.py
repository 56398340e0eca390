"""Model cards (markdown) for shipped models, written from the run's own files.

Every number on a card comes from the run folder that trained the model (``config.json``,
``metrics.json``, the checkpoint's sidecar) or from the build (reference probabilities, file
sizes); the maintainer supplies only the command, the commit and a one-line summary. The
layout follows Mitchell et al. 2019, "Model Cards for Model Reporting": what the model is,
how it was made, how well it does and on whom, how to feed it, what it is not for.
"""

from __future__ import annotations

from typing import Any

DISCLAIMER = (
    "A research tool, **not a medical device**: it has not been cleared or validated for "
    "clinical use, and its output must not guide the care of a patient."
)
ATTRIBUTION = (
    "Trained on PTB-XL (Wagner, Strodthoff, Bousseljot, Kreiseler, Lunze, Samek, Schaeffter, "
    "2020; PhysioNet, https://doi.org/10.13026/x4td-x982; Scientific Data 7, 154), published "
    "under the Creative Commons Attribution 4.0 licence (CC BY 4.0). These weights are a work "
    "derived from PTB-XL and are shared under the same attribution."
)


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(value: Any, ci: Any) -> str:
    return _f(value) if not ci else f"{_f(value)} [{_f(ci[0])}, {_f(ci[1])}]"


def _run_seconds(timing: dict[str, Any]) -> float | None:
    """A run's wall time: ``total_seconds``, but never less than its epochs and final evaluation
    (a run resumed before ecgcli 0.2.0 counted only its last session in ``total_seconds``)."""
    parts = [
        timing.get("total_seconds"),
        (timing.get("train_seconds") or 0) + (timing.get("eval_seconds") or 0),
    ]
    return max((p for p in parts if p), default=None)


def _retuned_note(metrics: dict[str, Any]) -> list[str]:
    """Which classes' thresholds were tuned again on fold 9 when the model was built, and why."""
    changed = metrics.get("thresholds_retuned")
    if not changed:
        return []
    return [
        "",
        f"Thresholds of {', '.join(changed)} were tuned again on fold 9 when the model was built: "
        "their F1-best threshold called the class on more than 10% of fold-9 records and on more "
        "than ten times as many as carry it (a class the model cannot pick out there), so they keep "
        "0.5. The F1 figures use these thresholds.",
    ]


def _duration(seconds: Any) -> str:
    if not seconds:
        return "n/a"
    h, rem = divmod(int(seconds), 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def _per_class(metrics: dict[str, Any], sidecar: dict[str, Any]) -> list[str]:
    per = (metrics.get("test_tuned") or {}).get("per_class") or {}
    cal = metrics.get("calibration") or {}
    temp = cal.get("temperature") or {}
    ece0 = (cal.get("test_uncalibrated") or {}).get("ece") or {}
    ece1 = (cal.get("test") or {}).get("ece") or {}
    rows = [
        "| class | AUROC | AUPRC | F1 (fold-9 threshold) | support (fold 10) | threshold | temperature "
        "| ECE before | ECE after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sidecar.get("class_names") or []:
        m = per.get(c) or {}
        rows.append(
            f"| {c} | {_f(m.get('auroc'))} | {_f(m.get('auprc'))} | {_f(m.get('f1'))} "
            f"| {m.get('support', 'n/a')} "
            f"| {_f(m.get('threshold'))} | {_f(temp.get(c), 2)} | {_f(ece0.get(c))} | {_f(ece1.get(c))} |"
        )
    return rows


def _input_contract(sidecar: dict[str, Any]) -> list[str]:
    encoder = sidecar.get("kind") == "encoder"
    fs = sidecar.get("sampling_rate") or 100
    window = sidecar.get("signal_length") or 1000
    stride = sidecar.get("window_stride")
    leads = ", ".join(sidecar.get("leads") or [])
    how = sidecar.get("aggregate") or "mean"
    if encoder:
        dim = (sidecar.get("architecture") or {}).get("feature_dim")
        return [
            f"- **Leads:** {leads}, in this order, normalised per lead with the statistics in the "
            "sidecar (`ecg finetune` applies them; so does a classifier built on it).",
            f"- **Units and rate:** millivolts at {fs} Hz.",
            f"- **Length:** pretrained on windows of {window} samples ({window / fs:g} s); any length "
            "works, the features are pooled over time.",
            f"- **Output:** {dim} features per input, pooled over time: no classes, no probabilities. "
            "Fine-tune it (`ecg finetune`) to get a classifier.",
        ]
    return [
        f"- **Leads:** {leads}, matched by name in the record's header (any order or spelling; extra "
        "channels are ignored). A record without one of these leads is refused.",
        "- **Units:** millivolts; the header's units are honoured (µV and V records are converted).",
        f"- **Sampling rate:** {fs} Hz. Other rates are resampled with a polyphase anti-aliasing "
        "filter at the exact rational ratio.",
        f"- **Length:** the model sees windows of {window} samples ({window / fs:g} s)"
        + (f" every {stride} samples ({stride / fs:g} s)" if stride else "")
        + f"; a record's window probabilities are combined by their {how}. A record shorter than "
        "one window is refused or zero-padded as `ecg predict` says for that record.",
        "- **Output:** one probability per class (calibrated where a temperature is listed), and a "
        "yes/no per class at the threshold tuned on fold 9.",
    ]


def _probe_section(name: str, metrics: dict[str, Any]) -> list[str]:
    """An encoder's linear-probe curve during pretraining (fold 9), from its run's metrics."""
    probes = [h for h in metrics.get("history") or [] if "probe_auroc" in h]
    init = metrics.get("probe_at_init") or {}
    data = metrics.get("data") or {}
    rows = ["| after epoch | probe macro AUROC (fold 9) | probe macro F1 (fold 9) |", "|---:|---:|---:|"]
    if init:
        rows.append(f"| 0 (untrained) | {_f(init.get('probe_auroc'))} | {_f(init.get('probe_f1'))} |")
    rows += [f"| {h['epoch']} | {_f(h['probe_auroc'])} | {_f(h.get('probe_f1'))} |" for h in probes]
    return [
        "## What it learned: the live linear probe",
        "",
        "During pretraining, a logistic regression on the frozen encoder's pooled features was fitted "
        f"on {data.get('n_probe_train', 'a labelled fraction of')} labelled superdiagnostic records of "
        f"folds 1-8 and scored on fold 9 ({data.get('n_probe_val', 'n/a')} records). Fold 10 was not "
        "used: an encoder has no test score of its own; what it buys is measured by fine-tuning it "
        "against a model trained from scratch on the same seeds (the results pages).",
        "",
        *rows,
        "",
        f"Fine-tune it: `ecg finetune --ssl-checkpoint {name} --label-fraction 0.1 --recipe benchmark "
        "--epochs 15 --encoder-lr 0.001` (the fine-tuning recipe of the results pages).",
        "",
    ]


def _replicates_below(comparison: dict[str, Any]) -> str:
    """How often this model came out at or below the other: the one-sided bootstrap p that it is
    not better, or (when it is worse) the share of replicates that make it so, said in words."""
    p, n = comparison["p_not_better"], comparison["n_boot"]
    if comparison["delta"] >= 0:
        return f"one-sided p = {p:.3g} that this model is not better"
    below = round(p * n)
    return f"at or below it in {below:,} of them" if below < n else "below it in every one"


def _comparison_section(comparison: dict[str, Any]) -> list[str]:
    """What this model costs (or gains) against another on the same fold-10 records."""
    lo, hi = comparison["ci"]
    rows = [f"| {c} | {_f(a)} | {_f(b)} | {a - b:+.3f} |" for c, (a, b) in comparison["per_class"].items()]
    return [
        f"## Against {comparison['against']}",
        "",
        f"Same recipe and seed, scored on the same {comparison['n']} fold-10 records: macro AUROC "
        f"{_f(comparison['macro_auroc'])} against {_f(comparison['baseline_macro_auroc'])}, a difference of "
        f"**{comparison['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]** (paired bootstrap, {comparison['n_boot']:,} "
        f"replicates of the records; {_replicates_below(comparison)}). One training run each: the "
        "interval covers the test records' variation, not the training seed's.",
        "",
        f"| class | this model | {comparison['against']} | difference |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def render_card(
    name: str,
    sidecar: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
    fold10: dict[str, Any],
    reference: dict[str, Any],
    provenance: Any,
    summary: str,
    comparison: dict[str, Any] | None = None,
) -> str:
    """The card of shipped model ``name`` (markdown)."""
    arch = sidecar.get("architecture") or {}
    kind = sidecar.get("kind", "classifier")
    classes = ", ".join(sidecar.get("class_names") or [])
    data = metrics.get("data") or {}
    timing = metrics.get("timing") or {}
    versions = sidecar.get("versions") or {}
    lines = [
        f"# Model card: `{name}`",
        "",
        summary,
        "",
        DISCLAIMER,
        "",
        "## The model",
        "",
        "| | |",
        "|---|---|",
        f"| kind | {kind} |",
        f"| encoder | `{arch.get('encoder')}` {arch.get('encoder_args', {})} |",
    ]
    if kind == "classifier":
        lines += [
            f"| head | `{arch.get('head')}` {arch.get('head_args', {})} |",
            f"| task | {sidecar.get('task')} ({len(sidecar.get('class_names') or [])} classes): {classes} |",
        ]
    lines += [
        f"| leads | {', '.join(sidecar.get('leads') or [])} |",
        f"| versions | ecgcli {versions.get('ecgcli')}, torch {versions.get('torch')}, "
        f"python {versions.get('python')} |",
        "",
        "## How it was made",
        "",
        f"- **Data:** {provenance.data}.",
    ]
    if kind == "classifier":
        lines.append(
            f"- **Protocol:** the standard PTB-XL folds: folds 1-8 train "
            f"({data.get('n_train', 'n/a')} records labelled for the task, "
            f"{config.get('label_fraction', 1.0):.0%} of them), fold 9 "
            f"({data.get('n_val', 'n/a')} records) selects the epoch (by macro "
            f"{metrics.get('select_metric', config.get('select_metric'))}), tunes each class's threshold"
            + (
                " and fits each class's temperature"
                if (metrics.get("calibration") or {}).get("method")
                else ""
            )
            + f", and fold 10 ({data.get('n_test', 'n/a')} records) is only scored."
        )
        lines.append(
            f"- **Training:** {metrics.get('epochs_run', config.get('epochs'))} epochs, best on fold 9 after "
            f"epoch {metrics.get('best_epoch')}; {_duration(_run_seconds(timing))} on "
            f"{provenance.hardware}."
        )
    else:
        lines.append(
            f"- **Training:** {config.get('epochs')} epochs of self-supervised pretraining on folds 1-8 "
            f"without labels; {_duration(_run_seconds(timing))} on {provenance.hardware}."
        )
    lines += [
        f"- **Command** (run at commit `{provenance.commit}`):",
        "",
        "```bash",
        provenance.command,
        "```",
        "",
    ]
    if kind == "classifier":
        lines += [
            f"## How well it does: fold 10 ({fold10.get('n')} records)",
            "",
            "| metric | value [95% bootstrap CI] |",
            "|---|---|",
            f"| macro AUROC | {_ci(fold10.get('macro_auroc'), fold10.get('auroc_ci'))} |",
            f"| macro AUPRC | {_ci(fold10.get('macro_auprc'), fold10.get('auprc_ci'))} |",
            f"| Fmax at the fold-9 threshold ({_f(fold10.get('fmax_threshold'), 2)}) "
            f"| {_ci(fold10.get('fmax'), fold10.get('fmax_ci'))} |",
            f"| macro F1 at the per-class fold-9 thresholds | {_f(fold10.get('macro_f1_tuned'))} |",
            f"| macro ECE (15 bins), before → after temperature | {_f(fold10.get('ece_uncalibrated'))} → "
            f"{_f(fold10.get('ece'))} |",
            "",
            "Bootstrap: 1,000 replicates of the fold-10 records (seed 0), each redrawn until every class "
            "keeps a positive and a negative, percentile intervals.",
            *_retuned_note(metrics),
            "",
            "### Per class (fold 10)",
            "",
            *_per_class(metrics, sidecar),
            "",
            "Re-check these numbers on your own copy of PTB-XL: "
            f"`ecg models --check {name} --data-root PTB-XL`.",
            "",
        ]
        if comparison:
            lines += _comparison_section(comparison)
    if kind == "encoder":
        lines += _probe_section(name, metrics)
    lines += [
        "## Input contract",
        "",
        *_input_contract(sidecar),
        "",
        "## Intended use and limitations",
        "",
        "- **Intended use:** research and teaching: a baseline to compare against, a starting point "
        "for fine-tuning, a way to try ecgcli on real records without training.",
        f"- **Population:** PTB-XL: {provenance.population or 'see the PTB-XL paper'}. Performance on "
        "other populations, devices, lead placements, children or ambulatory (Holter, wearable) "
        "recordings was **not validated**.",
        "- **Labels:** PTB-XL's statements come from one or two cardiologists' reports, partly "
        "machine-generated and validated; they are not an independent gold standard.",
        "- **Not validated:** prospective use, other sampling rates than 100 Hz (they are resampled), "
        "records with pacemakers or heavy noise beyond what PTB-XL holds, subgroup fairness.",
        "",
        "## Licence and attribution",
        "",
        ATTRIBUTION,
        "",
    ]
    if reference.get("onnx_max_abs_delta") is not None:
        lines += [
            "## Build check",
            "",
            f"On the {len(reference.get('records', {}))} example records under `examples/records/`, the "
            f"shipped ONNX file agrees with the torch weights to max |Δp| "
            f"{reference['onnx_max_abs_delta']:.1e}; the tests hold every install to these probabilities.",
            "",
        ]
    return "\n".join(lines)
