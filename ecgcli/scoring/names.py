"""What each metric key is called: a short column header and a longer label, in one table
that the training view, the comparison tables, their files and multiseed.json all read.
Import-light on purpose (the CLI reads it while rendering)."""

from __future__ import annotations

#: key -> (short header, label)
METRIC_NAMES: dict[str, tuple[str, str]] = {
    "auroc": ("AUROC", "AUROC"),
    "auprc": ("AUPRC", "AUPRC"),
    "fmax": ("Fmax", "Fmax"),
    "fmax_bench": ("Fmax*", "Fmax (benchmark)"),
    "f1": ("F1", "macro F1"),
    "sensitivity": ("sens", "sensitivity"),
    "specificity": ("spec", "specificity"),
    "ece": ("ECE", "ECE"),
    "brier": ("Brier", "Brier"),
    "probe_auroc": ("probe AUROC", "linear-probe macro AUROC on fold 9"),
    "probe_f1": ("probe F1", "linear-probe macro F1 on fold 9"),
    "augment_share": ("aug share", "share of training time spent augmenting"),
}

#: The short header of each metric.
SHORT: dict[str, str] = {k: short for k, (short, _) in METRIC_NAMES.items()}
#: The longer label of each metric (file headers, plot axes).
LABELS: dict[str, str] = {k: label for k, (_, label) in METRIC_NAMES.items()}
