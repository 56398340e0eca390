"""The S4D encoder (``s4``): the FFT convolution is the state-space recurrence it stands for,
the S4D-Lin initialisation, shapes, the bidirectional kernel, gradients, the one-line errors,
and one tiny real training run through the CLI. Everything is small (seconds on 2 cores)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.models import build_encoder
from ecgcli.models.s4 import MIN_SAMPLES, S4DLayer, S4Encoder, _direct_conv, _fft_conv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recurrence(layer: S4DLayer, u: torch.Tensor, direction: int = 0) -> torch.Tensor:
    """``x_k = A_bar x_{k-1} + B_bar u_k``, ``y_k = 2 Re(C x_k) + D u_k`` step by step, in
    complex128, from the layer's own parameters (ZOH with B = 1). ``u``: ``(H, L)``."""
    p = {k: v.detach().double() for k, v in layer.named_parameters()}
    a = -p["log_a_real"].exp() + 1j * p["a_imag"]  # (H, N/2)
    dt = p["log_dt"].exp().unsqueeze(-1)
    a_bar = torch.exp(dt * a)
    b_bar = (a_bar - 1) / a
    c = torch.complex(p["c"][direction, ..., 0], p["c"][direction, ..., 1])
    x = torch.zeros_like(a)
    ys = []
    for k in range(u.shape[-1]):
        x = a_bar * x + b_bar * u[:, k : k + 1].double()
        ys.append(2 * (c * x).sum(-1).real + p["d"] * u[:, k].double())
    return torch.stack(ys, dim=-1)


def test_fft_convolution_equals_the_recurrence() -> None:
    torch.manual_seed(0)
    layer = S4DLayer(channels=3, d_state=8)
    with torch.no_grad():  # steps across the whole init range, so slow and fast modes are checked
        layer.log_dt.copy_(torch.tensor([math.log(1e-3), math.log(1e-2), math.log(1e-1)]))
    u = torch.randn(3, 16)
    with torch.no_grad():
        y = layer(u.unsqueeze(0))[0].double()
    assert torch.allclose(y, _recurrence(layer, u), atol=1e-5)


def test_bidirectional_adds_a_backward_recurrence_over_later_samples() -> None:
    torch.manual_seed(1)
    layer = S4DLayer(channels=2, d_state=4, bidirectional=True)
    u = torch.randn(2, 16)
    with torch.no_grad():
        y = layer(u.unsqueeze(0))[0].double()
    forward = _recurrence(layer, u, 0)
    # the backward kernel reads samples strictly after t: the recurrence over the reversed
    # sequence, delayed by one step, without a second skip term
    rev = _recurrence(layer, torch.cat([torch.zeros(2, 1), u.flip(-1)[:, :-1]], dim=-1), 1)
    rev = rev - layer.d.detach().double().unsqueeze(-1) * torch.cat(
        [torch.zeros(2, 1), u.flip(-1)[:, :-1]], -1
    )
    assert torch.allclose(y, forward + rev.flip(-1), atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_export_path_is_the_same_convolution(bidirectional: bool) -> None:
    torch.manual_seed(2)
    u, k0, k1 = torch.randn(2, 3, 20), torch.randn(3, 20), torch.randn(3, 20)
    second = k1 if bidirectional else None
    assert torch.allclose(_fft_conv(u, k0, second), _direct_conv(u, k0, second), atol=1e-4)


def test_s4d_lin_initialisation() -> None:
    torch.manual_seed(0)
    layer = S4DLayer(channels=64, d_state=16)
    a_real = -layer.log_a_real.detach().exp()
    assert torch.allclose(a_real, torch.full_like(a_real, -0.5))
    assert torch.allclose(layer.a_imag.detach(), math.pi * torch.arange(8.0).expand(64, 8))
    dt = layer.log_dt.detach().exp()
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    assert dt.min() < 3e-3 and dt.max() > 3e-2  # spread log-uniformly, not clustered
    assert layer.c.shape == (1, 64, 8, 2)  # complex C as (real, imag)
    assert S4DLayer(4, 6, bidirectional=True).c.shape == (2, 4, 3, 2)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_shapes_and_gradients(bidirectional: bool, norm: str) -> None:
    torch.manual_seed(0)
    enc = S4Encoder(in_ch=12, width=16, depth=2, d_state=8, bidirectional=bidirectional, norm=norm)
    x = torch.randn(3, 12, 250)
    with torch.no_grad():
        enc.eval()  # dropout off: forward is the mean of the feature map
        assert torch.allclose(enc(x), enc.forward_features(x).mean(-1), atol=1e-6)
    fmap = enc.train().forward_features(x)
    assert fmap.shape == (3, 16, 250) and enc.out_dim == 16
    fmap.pow(2).mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert enc.blocks[0].ssm.log_dt.grad.abs().sum() > 0 and enc.blocks[0].ssm.a_imag.grad.abs().sum() > 0
    assert build_encoder("s4", **enc.config()).config() == enc.config()


def test_unidirectional_is_causal_and_bidirectional_is_not() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 12, 64)
    later = x.clone()
    later[..., 40:] += 1.0
    for bidirectional, same in ((False, True), (True, False)):
        enc = S4Encoder(width=8, depth=2, d_state=4, bidirectional=bidirectional, dropout=0.0).eval()
        with torch.no_grad():
            a, b = enc.forward_features(x)[..., :40], enc.forward_features(later)[..., :40]
        assert torch.allclose(a, b, atol=1e-5) is same


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"d_state": 7}, "even d_state"),
        ({"d_state": 0}, "even d_state"),
        ({"width": 0}, "width"),
        ({"norm": "group"}, "norm must be one of layer, batch"),
        ({"dropout": 1.0}, "dropout"),
        ({"dt_min": 0.2, "dt_max": 0.1}, "dt_min <= dt_max"),
    ],
)
def test_bad_arguments_are_one_line(kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        S4Encoder(**kwargs)
    assert "\n" not in str(err.value)


def test_too_short_windows_are_refused() -> None:
    enc = S4Encoder(width=8, depth=1, d_state=4)
    enc(torch.randn(1, 12, MIN_SAMPLES))  # the minimum works
    with pytest.raises(ConfigError, match=f"at least {MIN_SAMPLES} samples"):
        enc(torch.randn(1, 12, MIN_SAMPLES - 1))


def test_models_lists_s4_with_fft_flops() -> None:
    from ecgcli.models.profile import FLOPS_NOTE, profile_encoder

    prof = profile_encoder("s4", samples=100)
    enc = S4Encoder()
    # per layer: rfft of the input and of the kernel (width channels each), one irfft; n = 2T
    fft = enc.depth * 3 * enc.width * 2.5 * 200 * math.log2(200)
    assert prof.flops > fft and prof.params == sum(p.numel() for p in enc.parameters()) + enc.out_dim * 5 + 5
    assert "FFT" in FLOPS_NOTE  # `ecg models` prints the note (tests/test_encoders.py runs it)


def test_trains_one_tiny_epoch_through_the_cli(synth_root: Path, session_cache: Path, tmp_path: Path) -> None:
    args = [
        "train",
        "supervised",
        "--encoder",
        "s4",
        "--width",
        "8",
        "--epochs",
        "1",
        "--label-fraction",
        "1",
    ]
    args += ["--data-root", str(synth_root), "--device", "cpu", "--signal-length", "250", "--name", "s4tiny"]
    env = {"ECG_CACHE_DIR": str(session_cache), "ECG_RUNS_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    run = tmp_path / "s4tiny"
    sidecar = json.loads((run / "model.json").read_text())
    assert (
        sidecar["architecture"]["encoder"] == "s4" and sidecar["architecture"]["encoder_args"]["width"] == 8
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["test"]["macro_auroc"])


def test_too_short_signal_length_is_one_line(synth_root: Path) -> None:
    args = ["train", "supervised", "--encoder", "s4", "--signal-length", "8", "--data-root", str(synth_root)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 2 and "--signal-length must be between" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exports_agree_with_the_torch_model(fmt: str, tmp_path: Path) -> None:
    """ONNX has no complex tensors: the export path convolves directly (``_direct_conv``)."""
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    from ecgcli import LEADS
    from ecgcli.inference.export import TOLERANCE, export_model
    from ecgcli.models import ECGClassifier
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

    torch.manual_seed(0)
    model = ECGClassifier.build("s4", 5, width=8, depth=1, d_state=4, bidirectional=True).eval()
    meta = checkpoint_meta(
        "classifier",
        architecture=model.architecture(),
        class_names=["NORM", "MI", "STTC", "HYP", "CD"],
        leads=list(LEADS),
        sampling_rate=100,
        signal_length=250,
        thresholds=[0.5] * 5,
        normalisation={"mean": [0.0] * 12, "std": [1.0] * 12},
    )
    ckpt = save_checkpoint(tmp_path / "model.safetensors", model, meta)
    report = export_model(ckpt, fmt, tmp_path / f"m.{fmt}", n_check=100)
    assert report.max_delta <= TOLERANCE


def test_s4_bidir_is_the_bidirectional_default() -> None:
    enc = build_encoder("s4_bidir", width=8, depth=1, d_state=4)
    assert enc.bidirectional and enc.blocks[0].ssm.c.shape[0] == 2
    assert build_encoder("s4_bidir", **enc.config()).config() == enc.config()
    assert not build_encoder("s4", width=8, depth=1, d_state=4).bidirectional  # causal
