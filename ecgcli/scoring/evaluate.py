"""Inference on a split and the standard evaluation: select on fold 9, report on fold 10.

``evaluate_split_pair`` tunes one threshold per class on the validation predictions (max F1)
and reports both folds at 0.5 and at those thresholds, so a reader can see how much of a
result is threshold tuning. The numbers a paper should quote are the *test* ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ecgcli.scoring.metrics import Metrics, compute_metrics, fmax_threshold, tune_thresholds

#: Samples (windows or records, times their length) per inference pass on a CPU when no batch
#: size is given. Passes whose activations stay in the processor's cache are faster: on one
#: AMD EPYC core, ``resnet1d_wang`` scored 256 records cut into 7 windows each in 8.0 s in
#: passes of 512 windows and 5.3 s in passes of 65, and 256 whole records of 1,000 samples in
#: 5.7 s in one pass and 2.3 s in passes of 16 (``results/eval_batch_cpu.json``).
CPU_SAMPLES_PER_PASS = 16_384
#: Windows per pass on an accelerator, where larger passes keep it busy.
DEVICE_WINDOWS_PER_PASS = 512


def windows_per_pass(device: torch.device, length: int, batch_size: int | None = None) -> int:
    """How many windows (or whole records) of ``length`` samples one inference pass takes:
    ``batch_size`` when given, else :data:`CPU_SAMPLES_PER_PASS` worth on a CPU and
    :data:`DEVICE_WINDOWS_PER_PASS` on an accelerator."""
    if batch_size is not None:
        return max(1, batch_size)
    if device.type == "cpu":
        return max(1, CPU_SAMPLES_PER_PASS // max(1, length))
    return DEVICE_WINDOWS_PER_PASS


def to_windows(x: torch.Tensor, window: int, stride: int | None = None) -> tuple[torch.Tensor, int]:
    """Cut ``(B, C, T)`` into ``window``-sample pieces every ``stride`` samples (default: the
    window, no overlap): ``(B * K, C, window)``, by the rule predict uses for any record
    (:func:`ecgcli.data.records.window_starts`: a remainder gets one more window aligned to
    the end; a signal shorter than one window is zero-padded at the end)."""
    from ecgcli.data.records import window_starts

    t = x.shape[-1]
    if t == window:
        return x, 1
    if t < window:
        return torch.nn.functional.pad(x, (0, window - t)), 1
    starts = torch.from_numpy(window_starts(t, window, stride)).to(x.device)
    idx = starts[:, None] + torch.arange(window, device=x.device)  # (K, window)
    w = x[:, :, idx]  # (B, C, K, window)
    return w.permute(0, 2, 1, 3).reshape(-1, x.shape[1], window), len(starts)


def _window_outputs(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    window: int | None,
    batch_size: int | None,
    stride: int | None,
) -> Iterator[torch.Tensor]:
    """The model's outputs for ``x`` batch by batch, one row per record and window:
    ``(b, K, C)`` (``K = 1`` without ``window``), in eval mode, the mode restored after.

    ``batch_size`` counts windows, not records: a pass takes as many whole records as give about
    that many windows (None: :func:`windows_per_pass`). Counting records let a pass of 512
    PTB-XL records cut into 7 windows each hold 3,584 windows, whose activations (over 400 MB a
    layer for ``resnet1d_wang``) set the peak memory of a whole training run."""
    from ecgcli.data.records import window_starts

    k_per_record, length = 1, x.shape[-1]
    if window is not None and x.shape[-1] > window:
        k_per_record, length = len(window_starts(x.shape[-1], window, stride)), window
    records = max(1, windows_per_pass(device, length, batch_size) // k_per_record)
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(x), records):
            xb = x[s : s + records].to(device, non_blocking=True)
            k = 1
            if window is not None:
                xb, k = to_windows(xb, window, stride)
            z = model(xb).float()
            yield z.reshape(-1, k, z.shape[-1])
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    window: int | None = None,
    batch_size: int | None = None,
    stride: int | None = None,
    aggregate: str = "mean",
) -> np.ndarray:
    """Sigmoid probabilities ``(N, C)``; with ``window``, each record's windows (every
    ``stride`` samples) combined by ``aggregate`` (mean or max), as predict does."""
    out = []
    for z in _window_outputs(model, x, device, window, batch_size, stride):
        p = torch.sigmoid(z)
        out.append((p.amax(dim=1) if aggregate == "max" else p.mean(dim=1)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


@torch.no_grad()
def predict_window_logits(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    window: int | None = None,
    batch_size: int | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """Logits of every window, ``(N, K, C)`` (``K = 1`` without ``window``): what temperature
    scaling is fitted on; ``mean_k sigmoid`` of them is :func:`predict_proba`."""
    out = [z.cpu() for z in _window_outputs(model, x, device, window, batch_size, stride)]
    return torch.cat(out).numpy() if out else np.zeros((0, 1, 0))


@torch.no_grad()
def encode(
    encoder: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int | None = None
) -> np.ndarray:
    """Encoder features ``(N, D)`` (eval mode), e.g. for a linear probe."""
    batch_size = windows_per_pass(device, x.shape[-1], batch_size)
    was_training = encoder.training
    encoder.eval()
    feats = [encoder(x[s : s + batch_size].to(device)).float().cpu() for s in range(0, len(x), batch_size)]
    encoder.train(was_training)
    return torch.cat(feats).numpy()


@dataclass
class SplitEvaluation:
    """Validation and test scores at 0.5 and at thresholds tuned on validation."""

    thresholds: np.ndarray
    val: Metrics
    val_tuned: Metrics
    test: Metrics
    test_tuned: Metrics

    def to_dict(self) -> dict:
        return {
            "thresholds": self.thresholds.tolist(),
            "val": self.val.to_dict(),
            "val_tuned": self.val_tuned.to_dict(),
            "test": self.test.to_dict(),
            "test_tuned": self.test_tuned.to_dict(),
        }


def evaluation_from_metrics(metrics: dict) -> SplitEvaluation:
    """The evaluation stored in a finished run's metrics.json."""
    return SplitEvaluation(
        thresholds=np.asarray(metrics["thresholds"]),
        **{k: Metrics.from_dict(metrics[k]) for k in ("val", "val_tuned", "test", "test_tuned")},
    )


def evaluate_split_pair(
    y_val: np.ndarray,
    p_val: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    class_names: tuple[str, ...] | None = None,
) -> SplitEvaluation:
    """Scores on fold 9 and fold 10 at 0.5 and at fold-9-tuned thresholds: per class for F1
    and the rest, one global threshold for the sample-centric F (the honest Fmax)."""
    thresholds = tune_thresholds(y_val, p_val)
    global_t = fmax_threshold(y_val, p_val)
    return SplitEvaluation(
        thresholds=thresholds,
        val=compute_metrics(y_val, p_val, 0.5, class_names),
        val_tuned=compute_metrics(y_val, p_val, thresholds, class_names, global_t),
        test=compute_metrics(y_test, p_test, 0.5, class_names),
        test_tuned=compute_metrics(y_test, p_test, thresholds, class_names, global_t),
    )


def headline(m: Metrics) -> dict[str, float]:
    """The four numbers shown per epoch (and in a run's summary table)."""
    return {
        "auroc": m.macro_auroc,
        "f1": m.macro_f1,
        "sensitivity": m.sensitivity,
        "specificity": m.specificity,
    }
