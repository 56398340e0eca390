"""Which SCP statements each synthetic record gets, for every PTB-XL task.

Superclass combinations keep PTB-XL's frequencies (drawn in :mod:`ecgcli.data.synth`). Within
them, and for form and rhythm, only statements the simulator (:mod:`ecgcli.data.ecgsim`) draws
honestly are used, each common enough (about 5% of records or more) that a 300-record set
has it in every fold, so every task trains and scores on small synthetic sets:

- diagnostic: NORM; IMI, ASMI, LMI (MI by territory: inferior, anteroseptal, lateral); NDT,
  NST_, ISC_ (STTC); LVH (HYP); CLBBB, CRBBB, 1AVB, LAFB (CD). Subclasses and superclasses
  follow from ``scp_statements.csv``.
- rhythm, one per record, drawn first and then made true by the rate and RR pattern drawn:
  SR (60-100 bpm, regular), SBRAD (< 60), STACH (> 100), SARRH (sinus, strong respiratory RR
  modulation), AFIB (irregular RR, no P waves, f-waves). A first-degree AV block needs P
  waves, so a record with 1AVB is never AFIB.
- form: NDT and NST_ (form and diagnostic); INVT whenever the drawn beat has inverted T waves
  (old MI, ischaemia, CLBBB's discordant T, LVH strain) plus some records with a global T
  inversion; LVOLT (limb-lead QRS below 0.5 mV; never with LVH); PVC (premature wide beats).

Rare classes are boosted above PTB-XL's prevalence (AFIB 7%, STACH 4%, ...) for that reason.
"""

from __future__ import annotations

import numpy as np

from ecgcli import SUPERCLASSES

#: Diagnostic statements drawn within each superclass, with their share of its records.
CLASS_CODES: dict[str, dict[str, float]] = {
    "NORM": {"NORM": 1.0},
    "MI": {"IMI": 0.45, "ASMI": 0.35, "LMI": 0.20},
    "STTC": {"NDT": 0.4, "NST_": 0.3, "ISC_": 0.3},
    "HYP": {"LVH": 1.0},
    "CD": {"CLBBB": 0.25, "CRBBB": 0.25, "1AVB": 0.25, "LAFB": 0.25},
}
#: Rhythm statements, their share of records and the heart rates (bpm) they are drawn at.
RHYTHMS: dict[str, tuple[float, float, float]] = {
    "SR": (0.60, 63.0, 97.0),
    "SBRAD": (0.10, 42.0, 56.0),
    "STACH": (0.10, 106.0, 140.0),
    "SARRH": (0.10, 63.0, 92.0),
    "AFIB": (0.10, 60.0, 130.0),
}
FORM_CODES = ("INVT", "LVOLT", "NDT", "NST_", "PVC")
_LVOLT_P, _PVC_P, _GLOBAL_INVT_P, _STRAIN_P = 0.07, 0.06, 0.05, 0.5
_OLD_MI = ("IMI", "ASMI", "LMI")
_LIKELIHOODS = (100.0, 80.0, 50.0, 35.0, 15.0)
_LIKELIHOOD_P = (0.62, 0.12, 0.14, 0.04, 0.08)


def _choose(rng: np.random.Generator, table: dict[str, float]) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _diagnostic_codes(rng: np.random.Generator, combo: str) -> dict[str, float]:
    """One diagnostic statement (with a likelihood) per superclass of ``combo``."""
    codes: dict[str, float] = {}
    for bit, cls in zip(combo, SUPERCLASSES, strict=True):
        if bit == "1":
            likelihood = (
                100.0
                if cls == "NORM" and rng.random() < 0.85
                else float(rng.choice(_LIKELIHOODS, p=_LIKELIHOOD_P))
            )
            codes[_choose(rng, CLASS_CODES[cls])] = likelihood
    return codes


def draw_statements(
    rng: np.random.Generator, combos: list[str], acute_mi: np.ndarray
) -> tuple[list[dict[str, float]], np.ndarray]:
    """Every record's ``scp_codes`` and the heart rate its rhythm statement requires.

    ``acute_mi`` marks records in an acute infarction stadium (ST elevation, no T inversion yet).
    """
    n = len(combos)
    names = list(RHYTHMS)
    share = np.array([RHYTHMS[r][0] for r in names])
    rhythm = rng.choice(len(names), size=n, p=share / share.sum())
    position = rng.random(n)  # where in its rhythm's rate range each record lies
    lvolt = rng.random(n) < _LVOLT_P
    pvc = rng.random(n) < _PVC_P
    global_invt = rng.random(n) < _GLOBAL_INVT_P
    strain = rng.random(n) < _STRAIN_P
    all_codes, rates = [], np.zeros(n)
    for i, combo in enumerate(combos):
        codes = _diagnostic_codes(rng, combo)
        name = names[rhythm[i]]
        if name == "AFIB" and "1AVB" in codes:
            name = "SR"
        _, low, high = RHYTHMS[name]
        rates[i] = low + position[i] * (high - low)
        inverted_t = (
            (any(c in codes for c in _OLD_MI) and not acute_mi[i])
            or "ISC_" in codes
            or "CLBBB" in codes
            or ("LVH" in codes and strain[i])
            or (global_invt[i] and combo[0] == "0")
        )
        if inverted_t:
            codes["INVT"] = 0.0
        if lvolt[i] and "LVH" not in codes:
            codes["LVOLT"] = 0.0
        if pvc[i]:
            codes["PVC"] = 100.0
        codes[name] = 100.0 if name == "AFIB" else 0.0
        all_codes.append(codes)
    return all_codes, rates


def code_matrix(codes: list[dict[str, float]]) -> np.ndarray:
    """``(N, K)`` multi-hot of every statement used, for stratifying the folds."""
    vocab = sorted({c for d in codes for c in d})
    index = {c: j for j, c in enumerate(vocab)}
    y = np.zeros((len(codes), len(vocab)), dtype=np.uint8)
    for i, d in enumerate(codes):
        y[i, [index[c] for c in d]] = 1
    return y


def assign_folds(rng: np.random.Generator, patients: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Folds 1-10, all records of a patient in one fold, balanced per statement (rarest first).

    Each patient goes to the fold with the fewest records of its rarest statement, ties broken
    by its other statements (relative to their frequency), then by fold size: the iterative
    stratification idea PTB-XL's own ``strat_fold`` used.
    """
    folds = np.zeros(len(patients), dtype=np.int64)
    uniq = rng.permutation(np.unique(patients))
    order = np.argsort(patients, kind="stable")
    starts = np.searchsorted(patients[order], uniq)
    ends = np.searchsorted(patients[order], uniq, side="right")
    groups = {p: order[a:b] for p, a, b in zip(uniq, starts, ends, strict=True)}
    freq = labels.sum(axis=0).astype(np.float64)
    present = {p: labels[rows].any(axis=0) for p, rows in groups.items()}
    rarest = {p: int(np.argmin(np.where(m, freq, np.inf))) if m.any() else -1 for p, m in present.items()}
    per_class = np.zeros((10, labels.shape[1] + 1))
    per_fold = np.zeros(10)
    for cls in [*np.argsort(freq, kind="stable"), -1]:
        for p in (p for p in uniq if rarest[p] == cls):
            rows = groups[p]
            others = (per_class[:, :-1][:, present[p]] / np.maximum(freq[present[p]], 1)).sum(axis=1)
            f = int(np.lexsort((rng.random(10), per_fold, others, per_class[:, cls]))[0])
            folds[rows] = f + 1
            per_class[f, :-1] += labels[rows].sum(axis=0)
            per_class[f, -1] += len(rows) if cls == -1 else 0
            per_fold[f] += len(rows)
    return folds
