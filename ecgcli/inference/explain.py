"""Which leads and moments of a record drove a class score (``ecg explain``).

Attributions are computed on exactly what ``ecg predict`` scores: the record is read, its
leads matched, resampled and cut into the model's windows by the same
:func:`ecgcli.data.records.prepare_record`, normalised with the checkpoint's statistics, and
fed to the same (Conv-BN fused) model of a :class:`ecgcli.inference.predict.Predictor`. The
attributed quantity is each window's *logit* for the class (before the sigmoid, so a
confident prediction does not saturate the gradients), with respect to the input in mV.

Methods:

- ``ig``, integrated gradients (Sundararajan et al. 2017, "Axiomatic attribution for deep
  networks"): ``(x - x0) * mean_a grad f(x0 + a (x - x0))`` over ``steps`` midpoint values
  of ``a`` in (0, 1). The baseline ``x0`` is a flat 0 mV line (an isoelectric ECG), so the
  attributions of a window add up (to the Riemann error) to ``f(x) - f(x0)``. All
  interpolation points of all windows go through the model as one batch (chunked only to
  bound memory), and one backward pass per class gives every gradient.
- ``gradxinput``, gradient x input (Shrikumar et al. 2016): ``x * grad f(x)``; one pass, the
  same baseline implicitly, no completeness.

Each window is attributed on its own; where the end-aligned last window overlaps the one
before, the record's attribution is the mean of the two. Per-lead totals (``--json``) are the
sum over time of each window's attribution, averaged over windows: for ``ig`` they add up to
the mean logit minus the mean baseline logit, so each lead's share of the score is readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcli import LEADS
from ecgcli.data.records import prepare_record
from ecgcli.errors import ConfigError, RecordError
from ecgcli.inference.predict import check_flat_leads

if TYPE_CHECKING:
    import torch

    from ecgcli.inference.predict import Predictor

METHODS = ("ig", "gradxinput")
DEFAULT_STEPS = 32
#: Rows (interpolation points x windows) per forward/backward pass; bounds memory only.
BATCH_ROWS = 128


@dataclass(frozen=True)
class Explanation:
    """One record, its probabilities, and the attribution of each explained class.

    ``signal`` is ``(n_leads, T)`` in mV at the model's rate ``fs`` (the model's ``leads``,
    the whole record, resampled); ``attributions[c]`` has the same shape; ``window_totals[c]``
    is ``(n_windows, n_leads)``. ``warnings`` name channels that stood in for a lead.
    """

    record: str
    fs: int
    window: int
    signal: np.ndarray
    probabilities: dict[str, float]
    thresholds: dict[str, float]
    classes: tuple[str, ...]
    attributions: dict[str, np.ndarray]
    window_totals: dict[str, np.ndarray]
    logits: dict[str, float]
    baseline_logits: dict[str, float]
    method: str
    steps: int
    chosen: str  # "class" (asked for), "above threshold" or "top class" (none above)
    leads: tuple[str, ...] = LEADS
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.fs

    def lead_totals(self, name: str) -> dict[str, float]:
        """Sum over time of the attribution per lead, averaged over windows."""
        totals = self.window_totals[name].mean(axis=0)
        return {lead: float(v) for lead, v in zip(self.leads, totals, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        classes = {}
        for c in self.classes:
            totals = self.lead_totals(c)
            absolute = sum(abs(v) for v in totals.values()) or 1.0
            classes[c] = {
                "probability": self.probabilities[c],
                "threshold": self.thresholds[c],
                "above_threshold": self.probabilities[c] >= self.thresholds[c],
                "logit": self.logits[c],
                "baseline_logit": self.baseline_logits[c],
                "lead_totals": totals,
                "lead_share": {k: abs(v) / absolute for k, v in totals.items()},
                "top_leads": sorted(totals, key=lambda k: -totals[k])[:3],
            }
        return {
            "record": self.record,
            "method": self.method,
            "steps": self.steps if self.method == "ig" else 1,
            "baseline": "0 mV (flat line)",
            "target": "window logit",
            "sampling_rate": self.fs,
            "window": self.window,
            "duration_s": self.duration_s,
            "chosen": self.chosen,
            "leads": list(self.leads),
            "warnings": list(self.warnings),
            "probabilities": dict(self.probabilities),
            "classes": classes,
        }


def check_options(predictor: Predictor, class_name: str | None, method: str, steps: int) -> None:
    """Refuse a bad method, step count or class name before any record is read."""
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r} (choose {' or '.join(METHODS)})")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if class_name is not None and class_name not in predictor.class_names:
        raise ConfigError(
            f"class {class_name!r} is not in this checkpoint (it has {', '.join(predictor.class_names)})"
        )


def explain_record(
    predictor: Predictor,
    stem: Path | str,
    class_name: str | None = None,
    method: str = "ig",
    steps: int = DEFAULT_STEPS,
) -> Explanation:
    """Attribute ``stem``'s score for ``class_name`` (default: every class at or above its
    threshold, or the top class when none is) with ``method``.

    A record shorter than one model window is refused (:class:`RecordError`): predict
    zero-pads it, but an explanation of padding would be drawn over nothing. So is a record
    whose every lead is flat, as in predict; flat leads of a record are named in ``warnings``.
    """
    check_options(predictor, class_name, method, steps)
    rec = prepare_record(stem, predictor.fs, predictor.window, predictor.leads)
    if rec.padded:
        raise RecordError(
            str(rec.stem),
            f"{rec.n_samples_in / rec.fs_in:.3g} s long, shorter than the model's "
            f"{predictor.window_seconds:g} s window: too short to explain",
        )
    rec = check_flat_leads(rec, predictor.leads)  # predict's rule: warn, or refuse an all-flat record
    probs = predictor.score_windows(rec.windows.copy(), np.array([rec.n_windows]))[0]
    names = predictor.class_names
    if class_name is not None:
        chosen, classes = "class", (class_name,)
    else:
        above = tuple(c for c, p, t in zip(names, probs, predictor.thresholds, strict=True) if p >= t)
        chosen, classes = (
            ("above threshold", above) if above else ("top class", (names[int(probs.argmax())],))
        )
    idx = [names.index(c) for c in classes]
    attr, logit, base_logit = attribute_windows(
        predictor.model, predictor.norm.mean, predictor.norm.std, rec.windows, idx, method, steps
    )
    timeline = to_timeline(np.concatenate([rec.windows[None], attr]), rec.starts, rec.n_samples_out)
    return Explanation(
        record=str(rec.stem),
        fs=predictor.fs,
        window=predictor.window,
        signal=timeline[0],
        probabilities={c: float(p) for c, p in zip(names, probs, strict=True)},
        thresholds={c: float(t) for c, t in zip(names, predictor.thresholds, strict=True)},
        classes=classes,
        attributions={c: timeline[1 + i] for i, c in enumerate(classes)},
        window_totals={c: attr[i].sum(axis=-1) for i, c in enumerate(classes)},
        logits={c: float(logit[:, i].mean()) for i, c in enumerate(classes)},
        baseline_logits={c: float(base_logit[:, i].mean()) for i, c in enumerate(classes)},
        method=method,
        steps=steps,
        chosen=chosen,
        leads=predictor.leads,
        warnings=rec.warnings,
    )


def attribute_windows(
    model: torch.nn.Module,
    mean: np.ndarray,
    std: np.ndarray,
    windows: np.ndarray,
    class_idx: list[int],
    method: str = "ig",
    steps: int = DEFAULT_STEPS,
    batch_rows: int = BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attributions ``(n_classes, K, L, W)`` of each window's logit for each class in
    ``class_idx``, w.r.t. ``windows`` (``(K, L, W)`` in mV, L leads); also the logits of the windows
    and of the 0 mV baseline, ``(K, n_classes)`` each.

    ``model`` takes normalised input (``(x - mean) / std`` per lead). Integrated gradients
    evaluate all ``steps x K`` interpolated windows as one batch of rows, in chunks of
    ``batch_rows``; gradient x input is the one-step case at ``a = 1``.
    """
    import torch

    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r} (choose {' or '.join(METHODS)})")
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    k = x.shape[0]
    mu = torch.as_tensor(mean, dtype=torch.float32)[:, None]
    sd = torch.as_tensor(std, dtype=torch.float32)[:, None]
    device = next(model.parameters()).device
    cols = torch.as_tensor(class_idx, dtype=torch.long)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps if method == "ig" else torch.ones(1)
    # row r is alpha[r // K] * window[r % K]: every interpolation point of every window
    n_rows = len(alphas) * k
    grad_sum = torch.zeros(len(cols), k, *x.shape[1:])
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        for s in range(0, n_rows, batch_rows):
            rows = torch.arange(s, min(s + batch_rows, n_rows))
            path = (alphas[rows // k][:, None, None] * x[rows % k]).to(device).requires_grad_(True)
            logits = model((path - mu.to(device)) / sd.to(device)).float()[:, cols.to(device)]
            for j in range(len(cols)):  # one backward pass per class, over the whole chunk
                (g,) = torch.autograd.grad(logits[:, j].sum(), path, retain_graph=j + 1 < len(cols))
                grad_sum[j].index_add_(0, rows % k, g.cpu())
        with torch.no_grad():
            both = torch.cat([x, torch.zeros_like(x[:1])]).to(device)
            ends = model((both - mu.to(device)) / sd.to(device)).float()[:, cols.to(device)].cpu()
    model.train(was_training)
    attr = x[None] * grad_sum / len(alphas)
    return attr.numpy(), ends[:k].numpy(), ends[k:].expand(k, -1).numpy()


def to_timeline(per_window: np.ndarray, starts: np.ndarray, n_samples: int) -> np.ndarray:
    """``(..., K, L, W)`` window values back on the record's time axis ``(..., L, n)``,
    averaging where windows overlap (one scatter-add, no loop over windows)."""
    *lead, k, c, w = per_window.shape
    idx = (np.asarray(starts)[:, None] + np.arange(w)).ravel()  # (K * W,)
    total = max(n_samples, int(idx.max()) + 1)
    flat = np.moveaxis(per_window, -3, -2).reshape(*lead, c, k * w)  # (..., 12, K * W)
    out = np.zeros((*lead, c, total), dtype=np.float64)
    _scatter_add(out, idx, flat)
    counts = np.bincount(idx, minlength=total).astype(np.float64)
    return (out / np.maximum(counts, 1.0))[..., :n_samples].astype(np.float32)


def _scatter_add(out: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """``out[..., idx] += values`` with repeated indices accumulated (via a bincount per row)."""
    rows = out.reshape(-1, out.shape[-1])
    vals = values.reshape(-1, values.shape[-1])
    offsets = (np.arange(rows.shape[0]) * rows.shape[1])[:, None]
    rows += np.bincount((offsets + idx[None, :]).ravel(), weights=vals.ravel(), minlength=rows.size).reshape(
        rows.shape
    )


__all__ = [
    "DEFAULT_STEPS",
    "METHODS",
    "Explanation",
    "attribute_windows",
    "check_options",
    "explain_record",
    "to_timeline",
]
