"""Every registered encoder: shapes, the forward contract, training, heads, checkpoints,
and ``ecg models``. Widths are shrunk so the whole file stays fast on two cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.models import ECGClassifier, build_encoder, encoder_names
from ecgcli.models.heads import ConcatPoolHead
from ecgcli.storage.checkpoint import checkpoint_meta, load_classifier, save_checkpoint, sidecar_path

# Small constructor arguments per encoder; a new encoder must add itself here to be tested.
SMALL = {
    "cnn1d": {"width": 8},
    "xresnet1d50": {"width": 8},
    "xresnet1d101": {"width": 4},
    "inception1d": {"width": 4},
    "resnet1d_wang": {"width": 8},
    "fcn_wang": {"width": 8},
    "lstm": {"width": 8},
    "lstm_bidir": {"width": 8},
    "transformer": {"width": 16, "depth": 1, "heads": 2},
    "s4": {"width": 8, "depth": 1, "d_state": 4},
    "s4_bidir": {"width": 8, "depth": 1, "d_state": 4},
}
ALL = sorted(SMALL)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_registered_encoder_is_tested() -> None:
    assert sorted(encoder_names()) == ALL


@pytest.mark.parametrize("name", ALL)
def test_maps_records_and_crops_to_out_dim(name: str) -> None:
    torch.manual_seed(0)
    enc = build_encoder(name, in_ch=12, **SMALL[name]).eval()
    for t in (1000, 250):
        x = torch.randn(4, 12, t)
        with torch.no_grad():
            fmap, pooled = enc.forward_features(x), enc(x)
        assert fmap.shape[:2] == (4, enc.out_dim) and fmap.shape[2] >= 1
        assert pooled.shape == (4, enc.out_dim)
        assert torch.allclose(pooled, fmap.mean(dim=-1))  # forward = average pool of the map
        assert torch.isfinite(pooled).all()
    # config() rebuilds the same architecture
    twin = build_encoder(name, **enc.config())
    assert {k: v.shape for k, v in twin.state_dict().items()} == {
        k: v.shape for k, v in enc.state_dict().items()
    }


@pytest.mark.parametrize("head", ["linear", "benchmark"])
@pytest.mark.parametrize("name", ALL)
def test_one_step_trains_and_gradients_reach_the_first_layer(name: str, head: str) -> None:
    torch.manual_seed(0)
    model = ECGClassifier.build(name, 5, head=head, in_ch=12, **SMALL[name])
    if head == "benchmark":  # dropout would make the before/after losses incomparable
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    x, y = torch.randn(8, 12, 250), (torch.rand(8, 5) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    first = next(model.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    opt.step()
    assert loss_fn(model(x), y).item() < loss.item()


@pytest.mark.parametrize("head", ["linear", "benchmark"])
@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip_gives_identical_outputs(name: str, head: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ECGClassifier.build(name, 3, head=head, in_ch=12, **SMALL[name])
    model.train()(torch.randn(6, 12, 250))  # move BatchNorm running statistics off their init
    model.eval()
    path = save_checkpoint(
        tmp_path / "m.safetensors", model, checkpoint_meta("classifier", architecture=model.architecture())
    )
    loaded, meta = load_classifier(path)
    assert meta["architecture"]["head"] == head and meta["architecture"]["encoder"] == name
    x = torch.randn(2, 12, 300)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_linear_head_keeps_its_keys_and_old_sidecars_without_head_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ECGClassifier.build("cnn1d", 5, width=8).eval()
    assert [k for k in model.state_dict() if k.startswith("head.")] == ["head.weight", "head.bias"]
    x = torch.randn(2, 12, 200)
    # the linear path is encoder(x) -> Linear, with encoder(x) the mean of its feature map
    assert torch.equal(
        model(x), nn.functional.linear(model.encoder.features(x).mean(dim=-1), *model.head.parameters())
    )
    arch = model.architecture()
    assert "head_args" not in arch
    del arch["head"]  # a checkpoint written before heads could be chosen
    path = save_checkpoint(
        tmp_path / "old.safetensors", model, checkpoint_meta("classifier", architecture=arch)
    )
    loaded, _ = load_classifier(path)
    assert torch.equal(loaded(x), model(x))


def test_benchmark_head_layout_and_rnn_last_step() -> None:
    head = ConcatPoolHead(4, 3)
    kinds = [type(m) for m in head.layers]
    assert kinds == [nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert [head.layers[1].p, head.layers[5].p] == [0.25, 0.5]
    first, last = head.layers[2], head.layers[6]
    assert (first.in_features, first.out_features, last.out_features) == (8, 128, 3)
    fmap = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, C, T)
    pooled = head.pool(fmap)
    assert torch.equal(pooled, torch.cat([fmap.amax(-1), fmap.mean(-1)], dim=1))
    bidir = ConcatPoolHead(4, 3, last_step="bidirectional").pool(fmap)
    # forward half (channels 0-1) at the last step, backward half (2-3) at the first
    assert torch.equal(
        bidir[:, 8:], torch.stack([fmap[:, 0, -1], fmap[:, 1, -1], fmap[:, 2, 0], fmap[:, 3, 0]], 1)
    )
    model = ECGClassifier.build("lstm", 5, head="benchmark", width=8)
    assert model.head.layers[0].num_features == 3 * 8
    assert model.architecture()["head_args"] == {"hidden": 128, "dropout": 0.5}


def test_architectures_follow_the_papers() -> None:
    from ecgcli.models.xresnet1d import Bottleneck

    for name, blocks in (("xresnet1d50", 16), ("xresnet1d101", 33)):
        enc = build_encoder(name)
        assert sum(isinstance(m, Bottleneck) for m in enc.modules()) == blocks
        assert enc.out_dim == 256 and enc.forward_features(torch.randn(1, 12, 1000)).shape == (1, 256, 32)
    inc = build_encoder("inception1d")
    assert [c.kernel_size[0] for c in inc.blocks[0].convs] == [39, 19, 9] and inc.out_dim == 128
    wang = build_encoder("resnet1d_wang")
    assert wang.forward_features(torch.randn(1, 12, 1000)).shape == (1, 128, 250)
    fcn = build_encoder("fcn_wang")
    convs = [m for m in fcn.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.kernel_size[0], c.out_channels) for c in convs] == [(8, 128), (5, 256), (3, 128)]


def test_unknown_encoder_and_head_are_one_clear_line() -> None:
    with pytest.raises(CheckpointError) as exc:
        ECGClassifier.build("resnet50")
    message = str(exc.value)
    assert "\n" not in message and "unknown encoder 'resnet50'" in message
    assert all(name in message for name in ALL)
    with pytest.raises(ConfigError, match=r"unknown head 'mlp' \(known: linear, benchmark\)"):
        ECGClassifier.build("cnn1d", head="mlp")
    with pytest.raises(ConfigError, match="inception1d needs"):
        build_encoder("inception1d", depth=4)


def test_unbuildable_sidecar_is_a_checkpoint_error(tmp_path: Path) -> None:
    model = ECGClassifier.build("cnn1d", 5, width=8)
    path = save_checkpoint(
        tmp_path / "m.safetensors", model, checkpoint_meta("classifier", architecture=model.architecture())
    )
    meta = json.loads(sidecar_path(path).read_text())
    meta["architecture"]["head"] = "mlp"
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not build.*unknown head 'mlp'"):
        load_classifier(path)


def test_ecg_models_json_lists_every_encoder_with_counted_flops() -> None:
    result = CliRunner().invoke(app, ["models", "--json", "--samples", "100"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {r["name"]: r for r in payload["encoders"]}
    assert sorted(rows) == ALL and payload["samples"] == 100
    assert all(r["params"] > 0 and r["flops"] > 0 for r in rows.values())
    # the counts are the arithmetic: cnn1d's six convolutions, the LSTM's gates, + the linear head
    t, flops, ni = 100, 0, 12
    for k, s, m in zip((11, 7, 7, 5, 5, 3), (2, 1, 2, 1, 2, 1), (1, 1, 2, 2, 4, 4), strict=True):
        t = (t + 2 * (k // 2) - k) // s + 1
        flops += 2 * ni * 64 * m * k * t
        ni = 64 * m
    assert rows["cnn1d"]["flops"] == flops + 2 * 256 * 5
    h = 256
    assert rows["lstm"]["flops"] == 2 * 100 * (4 * h * (12 + h) + 4 * h * (h + h)) + 2 * h * 5
    w, n = 128, 100 // 25  # transformer: patch embedding, 4 layers (QKV, out, MLP 4w; attention), head
    layer = 2 * n * 12 * w * w + 2 * 2 * n * n * w
    assert rows["transformer"]["flops"] == 2 * 12 * 25 * w * n + 4 * layer + 2 * w * 5
    assert rows["cnn1d"]["params"] == sum(p.numel() for p in ECGClassifier.build("cnn1d", 5).parameters())


def test_ecg_models_table() -> None:
    result = CliRunner().invoke(app, ["models", "--samples", "100"])
    assert result.exit_code == 0, result.output
    assert all(name in result.stdout for name in ALL) and "multiply-add" in result.stdout


@pytest.mark.parametrize("name", ["lstm_bidir", "xresnet1d50"])
def test_bf16_autocast_on_cpu_runs(name: str) -> None:
    """oneDNN refuses bf16 LSTMs on CPUs without bf16 units; the encoder falls back to fp32."""
    torch.manual_seed(0)
    model = ECGClassifier.build(name, 5, head="benchmark", in_ch=12, **SMALL[name])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(4, 12, 250))
    assert out.shape == (4, 5) and torch.isfinite(out.float()).all()


def test_config_heads_match_the_model_heads() -> None:
    """train/config.py lists the heads without importing torch; the lists must agree."""
    from ecgcli.models import HEADS
    from ecgcli.train.config import HEADS as CONFIG_HEADS

    assert tuple(CONFIG_HEADS) == tuple(HEADS)


def test_training_with_the_benchmark_head_saves_and_reloads_it(train_kwargs: dict, tmp_path: Path) -> None:
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.supervised import train_classifier

    out = tmp_path / "m.safetensors"
    cfg = SupervisedConfig(**{**train_kwargs, "epochs": 1, "head": "benchmark", "out": str(out)})
    train_classifier(cfg)
    model, meta = load_classifier(out)
    assert meta["architecture"]["head"] == "benchmark" and isinstance(model.head, ConcatPoolHead)


def test_config_knows_every_encoder_and_its_default_width() -> None:
    """train/config.py keeps the widths without importing torch: they must match the registry."""
    import inspect

    from ecgcli.models.encoders import _REGISTRY
    from ecgcli.train.config import ENCODER_WIDTHS, SupervisedConfig

    assert set(ENCODER_WIDTHS) == set(_REGISTRY)
    for name, factory in _REGISTRY.items():
        assert inspect.signature(factory).parameters["width"].default == ENCODER_WIDTHS[name], name
    assert SupervisedConfig(encoder="resnet1d_wang").width == 128
    assert SupervisedConfig().width == 64  # cnn1d: what configurations saved before hold
    assert SupervisedConfig(ssl_checkpoint="e.safetensors").width is None  # the checkpoint's


def test_transformer_tokens_are_patches_at_any_length() -> None:
    torch.manual_seed(0)
    enc = build_encoder("transformer").eval()  # the defaults: width 128, depth 4, 4 heads, 25-sample patches
    assert enc.config() == {"in_ch": 12, "width": 128, "depth": 4, "heads": 4, "patch": 25, "dropout": 0.0}
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        assert enc.forward_features(x[..., :250]).shape == (2, 128, 10)  # a 2.5 s crop: 10 tokens
        assert enc.forward_features(x).shape == (2, 128, 40)  # a 10 s record: 40
        assert enc(x).shape == (2, 128)
        # samples after the last whole patch are not read
        assert torch.equal(enc.forward_features(x[..., :260]), enc.forward_features(x[..., :250]))
        # positions matter: swapping two patches does not just swap their features
        swapped = torch.cat([x[..., 25:50], x[..., :25], x[..., 50:250]], dim=-1)
        a, b = enc.forward_features(x[..., :250]), enc.forward_features(swapped)
        assert not torch.allclose(a[..., [1, 0]], b[..., :2], atol=1e-4)
    with pytest.raises(ConfigError, match="divisible by heads"):
        build_encoder("transformer", width=30, heads=4)
