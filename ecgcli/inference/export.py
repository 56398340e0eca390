"""Portable models (``ecg export``): ONNX or TorchScript with the normalisation baked in.

The exported graph takes windows in millivolts, ``(batch, leads, window)`` float32, the
checkpoint's leads (12 unless trained with ``--leads``) in PTB-XL order at its sampling
rate, and returns sigmoid probabilities ``(batch, classes)``: lead normalisation (and the
per-class temperature of a calibrated checkpoint) are inside it, so a consumer needs no
ecgcli and no statistics file. What a consumer still needs (class names, thresholds, rate,
window, leads) travels with the model: in the ONNX model's ``metadata_props`` under the key
``ecgcli`` (JSON), or as the extra file ``ecgcli.json`` of a TorchScript archive.
``ecg predict --runtime onnx`` reads it back and refuses an ONNX file without it.

Every export is checked before it is written: the exported model and the safetensors model
(rebuilt by :func:`ecgcli.storage.checkpoint.load_classifier`, normalised in torch) score
the same ECG-like windows (from the dipole simulator that generates the synthetic PTB-XL,
one random diagnostic finding each), and the largest probability difference must be at most
``TOLERANCE``. Only then is the file written, atomically, so a failed export leaves nothing.

ONNX uses torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, and for a plain convolutional network both give the same graph.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcli import LEADS, __version__
from ecgcli.data.leads import lead_indices
from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.files import atomic_write_bytes
from ecgcli.inference.onnx_runtime import (
    INPUT_NAME,
    META_FORMAT,
    META_KEY,
    META_VERSION,
    OUTPUT_NAME,
    onnx_modules,
    run_onnx,
)
from ecgcli.inference.predict import read_meta, read_temperature

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-5
CHECK_RECORDS = 128
OPSET = 17
_FINDINGS = ("IMI", "AMI", "ISC_", "NDT", "LVH", "CLBBB", "CRBBB", "LAFB", "1AVB", "WPW")


class PortableClassifier(nn.Module):
    """``sigmoid(model((x - mean) / std) / temperature)``: millivolts in, probabilities out."""

    def __init__(
        self, model: nn.Module, mean: np.ndarray, std: np.ndarray, temperature: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32)[:, None])
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32)[:, None])
        inv_t = np.ones(0) if temperature is None else 1.0 / np.asarray(temperature)
        self.calibrated = temperature is not None
        self.register_buffer("inv_temperature", torch.as_tensor(inv_t, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model((x - self.mean) / self.std)
        if self.calibrated:
            logits = logits * self.inv_temperature
        return torch.sigmoid(logits)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    n_checked: int
    max_delta: float
    size_bytes: int


def portable_meta(meta: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    """What a consumer of the exported model needs, from the checkpoint's sidecar."""
    return {
        "format": META_FORMAT,
        "format_version": META_VERSION,
        "ecgcli_version": __version__,
        "source_checkpoint": str(checkpoint),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", len(meta.get("leads") or LEADS), meta["signal_length"]],
            "unit": "mV",
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(meta["class_names"])], "is": "probability"},
        "class_names": list(meta["class_names"]),
        "thresholds": list(meta["thresholds"]),
        "leads": list(meta.get("leads") or LEADS),
        "sampling_rate": meta["sampling_rate"],
        "signal_length": meta["signal_length"],
        # how a long record's windows are cut and combined, as the run scored fold 10: without
        # them the ONNX runtime would score a benchmark-recipe model differently from torch
        "window_stride": meta.get("window_stride"),
        "aggregate": meta.get("aggregate"),
        # already applied inside the graph; kept so a reader knows the output is calibrated
        "temperature": meta.get("temperature"),
        "normalisation": meta.get("normalisation"),
    }


def ecg_like_windows(n: int, fs: int, window: int, seed: int = 0) -> np.ndarray:
    """``n`` simulated 12-lead windows ``(n, 12, window)`` in mV, each with one random finding
    (or none), so the check covers the inputs a deployed model meets, not white noise."""
    from ecgcli.data import ecgsim

    rng = np.random.default_rng(seed)
    out = np.empty((n, 12, window), dtype=np.float32)
    for i in range(n):  # a simulator call per record: the check data, not a hot path
        beat = ecgsim.normal_beat(rng)
        beat.heart_rate = float(rng.uniform(50, 110))
        k = int(rng.integers(len(_FINDINGS) + 1))
        if k < len(_FINDINGS):
            ecgsim.apply_code(beat, _FINDINGS[k], float(rng.uniform(0.6, 1.2)), rng, bool(rng.random() < 0.5))
        out[i] = ecgsim.simulate(beat, fs, window, rng)[0]
    return out


def is_export(path: Path) -> bool:
    """Whether ``path`` is an earlier ``ecg export`` (ONNX or TorchScript, either format):
    the ecgcli metadata must be inside it, so any other file, checkpoints included, is not."""
    import zipfile

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):  # a TorchScript archive: its extra file
            with zipfile.ZipFile(path) as z:
                return any(n.endswith(f"/extra/{META_KEY}.json") for n in z.namelist())
        onnx = onnx_modules()[0]
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not zip, not protobuf, unreadable: not an export
        return False
    raw = next((p.value for p in proto.metadata_props if p.key == META_KEY), None)
    try:
        return raw is not None and json.loads(raw).get("format") == META_FORMAT
    except (ValueError, AttributeError):
        return False


def export_model(
    checkpoint: Path | str,
    fmt: str,
    out: Path | str,
    n_check: int = CHECK_RECORDS,
    seed: int = 0,
    force: bool = False,
) -> ExportReport:
    """Export ``checkpoint`` to ``out`` as ``fmt``, verify it, then write it atomically.

    An existing ``out`` is replaced only if it is an earlier export (or with ``force``); the
    temporaries of earlier exports to ``out`` that were killed (SIGKILL cannot be caught) are
    removed first, as every other writer of ecgcli does.
    """
    from ecgcli.files import probe_writable, refuse_replacing, remove_stale_temporaries
    from ecgcli.storage.checkpoint import load_classifier

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose {' or '.join(FORMATS)})")
    if n_check < 100:
        raise ConfigError(f"the export check needs at least 100 records, got {n_check}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / ('model.' + fmt)}")
    probe_writable(out.parent, "--out folder")
    refuse_replacing(out, is_export, force, "an earlier `ecg export` model")
    remove_stale_temporaries(out.parent, out.name)
    checkpoint = Path(checkpoint)
    # an export given back to export: say so, not "its sidecar model.json is missing"
    if checkpoint.suffix.lower() != ".safetensors" and checkpoint.is_file() and is_export(checkpoint):
        raise CheckpointError(
            f"{checkpoint}: already an `ecg export` model; export reads the safetensors checkpoint "
            "it came from"
        )
    model, meta = load_classifier(checkpoint)
    names, _, norm, fs, window, leads = read_meta(meta, checkpoint, model.head.out_features)
    temperature = read_temperature(meta, checkpoint, len(names))
    portable = PortableClassifier(model, norm.mean, norm.std, temperature).eval()
    info = portable_meta(meta, checkpoint)
    x = np.ascontiguousarray(ecg_like_windows(n_check, fs, window, seed)[:, lead_indices(leads)])
    with torch.no_grad():
        reference = portable(torch.from_numpy(x)).numpy()
    example = torch.from_numpy(x[:2])
    if fmt == "onnx":
        data = _to_onnx(portable, example, info)
        exported = run_onnx(data, x)
    else:
        data = _to_torchscript(portable, example, info)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(io.BytesIO(data))
        with torch.no_grad():
            exported = loaded(torch.from_numpy(x)).numpy()
    delta = float(np.abs(exported.astype(np.float64) - reference).max())
    if not delta <= TOLERANCE:
        raise CheckpointError(
            f"exported {fmt} model disagrees with {checkpoint}: max |delta p| {delta:.3g} > {TOLERANCE:g} "
            f"on {n_check} records; nothing written"
        )
    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ExportReport(out, fmt, n_check, delta, len(data))


def _to_onnx(portable: nn.Module, example: torch.Tensor, info: dict[str, Any]) -> bytes:
    onnx = onnx_modules()[0]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # torch says the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            portable,
            (example,),
            buf,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
        )
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info)
    proto.producer_name = "ecgcli"
    proto.doc_string = "ecgcli classifier: (batch, 12, window) mV -> (batch, classes) probabilities"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _to_torchscript(portable: nn.Module, example: torch.Tensor, info: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    # attention layers pick a fused kernel under no_grad and the plain ops otherwise, so the
    # trace and its check would record different graphs; the plain ops, every time
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():  # torch says torch.jit.trace is deprecated
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(portable, example)
            torch.jit.save(traced, buf, _extra_files={f"{META_KEY}.json": json.dumps(info)})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buf.getvalue()


__all__ = [
    "FORMATS",
    "CHECK_RECORDS",
    "TOLERANCE",
    "ExportReport",
    "PortableClassifier",
    "ecg_like_windows",
    "export_model",
    "is_export",
    "portable_meta",
]
