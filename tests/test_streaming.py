"""Training data streamed from the memory-mapped cache, and evaluation passes bounded in windows.

The streamed path must give the very batches the in-memory tensor gave (a resumed or repeated
run's numbers do not depend on which path a machine took), and an evaluation pass must never
hold more windows than it was asked for (the peak memory of a run).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecgcli.data.loader import EpochSampler
from ecgcli.data.normalize import fit_lead_norm
from ecgcli.scoring.evaluate import predict_proba, predict_window_logits
from ecgcli.train.config import SupervisedConfig
from ecgcli.train.data import CachedRows, load_training_data, signals_tensor, split_signals
from ecgcli.train.supervised import ClassifierObjective, refit_batchnorm


@pytest.fixture(scope="module")
def data(synth_root, session_cache):
    cfg = SupervisedConfig(data_root=str(synth_root), cache_dir=str(session_cache), device="cpu", workers=1)
    data = load_training_data(cfg, 1.0)
    return data, fit_lead_norm(data.store, data.split.train)


def test_cached_rows_give_the_tensor_bit_for_bit(data) -> None:
    d, norm = data
    rows = d.split.train
    full = signals_tensor(d.store, rows, norm)
    source = CachedRows(d.store, rows, norm)
    assert source.shape == tuple(full.shape) and len(source) == len(rows)
    pick = torch.tensor([5, 0, 17, 5, len(rows) - 1])
    assert torch.equal(source.take(pick), full.index_select(0, pick))
    leads = [0, 6]  # a reduced-lead model reads its own leads
    assert torch.equal(
        CachedRows(d.store, rows, norm.subset(leads), leads).take(pick),
        signals_tensor(d.store, rows, norm.subset(leads), leads).index_select(0, pick),
    )


def test_cached_rows_slice_like_a_tensor(data) -> None:
    d, norm = data
    source, full = CachedRows(d.store, d.split.val, norm), signals_tensor(d.store, d.split.val, norm)
    assert torch.equal(source[3:9], full[3:9]) and torch.equal(source[len(source) - 2 :], full[-2:])
    with pytest.raises(TypeError, match="sliced by a range"):
        source[3]


def test_evaluation_reads_cached_rows_as_it_reads_the_tensor(data) -> None:
    d, norm = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(12, 4, 5), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 5))
    source, full = CachedRows(d.store, d.split.test, norm), signals_tensor(d.store, d.split.test, norm)
    a = predict_window_logits(model, source, torch.device("cpu"), 250, batch_size=35, stride=125)
    b = predict_window_logits(model, full, torch.device("cpu"), 250, batch_size=35, stride=125)
    assert a.shape[0] == len(source) and np.array_equal(a, b)


def test_split_signals_stream_on_cpu_only(data) -> None:
    d, norm = data
    assert isinstance(split_signals(d.store, d.split.train, norm, torch.device("cpu")), CachedRows)
    meta = split_signals(d.store, d.split.train, norm, torch.device("meta"))
    assert isinstance(meta, torch.Tensor) and meta.device.type == "meta"


def test_streamed_batches_equal_the_in_memory_ones(data) -> None:
    d, norm = data
    rows = d.split.train
    y = torch.from_numpy(d.dataset.labels[rows].astype(np.float32))
    sampler = EpochSampler(d.dataset.labels[rows], "oversample", seed=3)
    x_val = signals_tensor(d.store, d.split.val, norm)

    def objective(x):
        model = nn.Sequential(nn.Conv1d(12, 4, 5), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 5))
        return ClassifierObjective(
            model, x, y, sampler, 32, nn.BCEWithLogitsLoss(), x_val, d.dataset.labels[d.split.val],
            window=250, seed=3, device=torch.device("cpu"),
        )  # fmt: skip

    streamed = objective(CachedRows(d.store, rows, norm))
    in_memory = objective(signals_tensor(d.store, rows, norm))
    for epoch in (0, 4):
        a, b = list(streamed.batches(epoch)), list(in_memory.batches(epoch))
        assert len(a) == len(b) == streamed.n_batches(epoch)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert xa.shape[-1] == 250
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_refit_batchnorm_reads_streamed_records(data) -> None:
    d, norm = data
    rows = d.split.train
    enc_a = nn.Sequential(nn.Conv1d(12, 4, 5), nn.BatchNorm1d(4))
    enc_b = nn.Sequential(nn.Conv1d(12, 4, 5), nn.BatchNorm1d(4))
    enc_b.load_state_dict(enc_a.state_dict())
    refit_batchnorm(enc_a, CachedRows(d.store, rows, norm), window=200, batch_size=64)
    refit_batchnorm(enc_b, signals_tensor(d.store, rows, norm), window=200, batch_size=64)
    assert torch.equal(enc_a[1].running_mean, enc_b[1].running_mean)
    assert torch.equal(enc_a[1].running_var, enc_b[1].running_var)


class _Widest(nn.Module):
    """A tiny model that remembers the largest batch of windows it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(12, 3, 5), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.widest = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.widest = max(self.widest, x.shape[0])
        return self.net(x)


def test_evaluation_passes_count_windows_not_records() -> None:
    torch.manual_seed(0)
    x = torch.randn(40, 12, 1000)
    model = _Widest()
    # 1000 samples in windows of 250 every 125: 7 windows a record
    small = predict_window_logits(model, x, torch.device("cpu"), 250, batch_size=21, stride=125)
    assert model.widest == 21  # 3 records of 7 windows, never 21 records
    model.widest = 0
    big = predict_window_logits(model, x, torch.device("cpu"), 250, batch_size=10_000, stride=125)
    assert model.widest == 280 and small.shape == big.shape == (40, 7, 3)
    np.testing.assert_allclose(small, big, atol=1e-5)
    model.widest = 0  # fewer windows asked for than a record has: one record a pass
    p = predict_proba(model, x, torch.device("cpu"), 250, batch_size=3, stride=125)
    assert model.widest == 7 and p.shape == (40, 3)
    model.widest = 0  # no windows: records are the windows
    predict_proba(model, x, torch.device("cpu"), None, batch_size=16)
    assert model.widest == 16


def test_a_cpu_pass_holds_about_16k_samples_unless_told() -> None:
    from ecgcli.scoring.evaluate import CPU_SAMPLES_PER_PASS, windows_per_pass

    cpu = torch.device("cpu")
    assert CPU_SAMPLES_PER_PASS == 16_384
    assert windows_per_pass(cpu, 250) == 65 and windows_per_pass(cpu, 1000) == 16
    assert windows_per_pass(torch.device("cuda"), 250) == 512  # an accelerator wants wide passes
    assert windows_per_pass(cpu, 250, batch_size=7) == 7
    torch.manual_seed(0)
    x = torch.randn(40, 12, 1000)
    model = _Widest()
    predict_proba(model, x, cpu, 250, stride=125)  # 65 windows: 9 records of 7
    assert model.widest == 63
    model.widest = 0
    predict_proba(model, x, cpu)  # whole records of 1,000 samples
    assert model.widest == 16
