"""Scoring records with an exported ONNX model and onnxruntime (``ecg predict --runtime onnx``).

No torch here, not even lazily, so scoring starts without torch's import time (and a
deployment that vendors this module needs numpy, scipy for resampling, and onnxruntime from
the ``onnx`` extra, not torch). Records are read,
resampled and windowed, chunked and reported by the same
:class:`ecgcli.inference.predict.WindowScorer` code as the torch path; only the forward pass
differs. The model must be an ``ecg export`` ONNX file: its ``metadata_props`` carry the
class names, thresholds, rate and window under the key ``ecgcli``, and any other ONNX file is
refused (its outputs could mean anything).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.files import check_format_version
from ecgcli.inference.predict import BATCH_SIZE, WindowScorer, aggregate_windows, read_meta

META_KEY = "ecgcli"
META_FORMAT = "ecgcli-portable"
META_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "ecg_mv", "probabilities"


def onnx_modules() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or one line saying how to install the extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError('ONNX export and runtime need the onnx extra: pip install "ecgcli[onnx]"') from None
    return onnx, onnxruntime


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError('the ONNX runtime needs the onnx extra: pip install "ecgcli[onnx]"') from None
    return onnxruntime


def run_onnx(data: bytes, x: np.ndarray) -> np.ndarray:
    """Probabilities of an in-memory ONNX model on ``x`` (onnxruntime, CPU)."""
    ort = _onnxruntime()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


class OnnxPredictor(WindowScorer):
    """An ``ecg export --format onnx`` model in an onnxruntime session."""

    def __init__(self, session: Any, meta: dict[str, Any], path: Path) -> None:
        self.session = session
        self.meta = meta
        self.checkpoint = Path(path)
        self.class_names, self.thresholds, self.norm, self.fs, self.window, self.leads = read_meta(
            meta, self.checkpoint
        )

    @classmethod
    def from_file(cls, path: Path | str, threads: int | None = None) -> OnnxPredictor:
        """Open ``path``; refuse (:class:`CheckpointError`) anything but an ecgcli ONNX export."""
        ort = _onnxruntime()
        path = Path(path)
        if path.is_dir() or path.suffix.lower() == ".safetensors":
            raise CheckpointError(
                f"{path}: a safetensors checkpoint, not an ONNX model; score it with --runtime torch "
                "(or export it with `ecg export`)"
            )
        if not path.is_file():
            raise CheckpointError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be at least 1, got {threads}")
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: not a readable ONNX model ({first})") from None
        raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise CheckpointError(
                f"{path}: not an ecgcli model (no {META_KEY!r} metadata); export one with `ecg export`"
            )
        try:
            meta = json.loads(raw)
        except ValueError:
            raise CheckpointError(f"{path}: its {META_KEY!r} metadata is not valid JSON") from None
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
            raise CheckpointError(f"{path}: not an ecgcli model (metadata format is not {META_FORMAT!r})")
        check_format_version(meta.get("format_version"), META_VERSION, path, "exported-model")
        names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        if names != ([INPUT_NAME], [OUTPUT_NAME]):
            raise CheckpointError(
                f"{path}: graph inputs/outputs {names} are not {INPUT_NAME} -> {OUTPUT_NAME}"
            )
        return cls(session, meta, path)

    def score_windows(
        self, windows: np.ndarray, counts: np.ndarray, aggregate: str = "mean", batch_size: int = BATCH_SIZE
    ) -> np.ndarray:
        """Probabilities ``(R, C)``; the graph normalises, so ``windows`` stay in mV."""
        self.check_windows(windows, counts)
        x = np.ascontiguousarray(windows, dtype=np.float32)
        probs = np.concatenate(
            [
                self.session.run([OUTPUT_NAME], {INPUT_NAME: x[s : s + batch_size]})[0]
                for s in range(0, len(x), batch_size)
            ]
        )
        return aggregate_windows(probs.astype(np.float64), np.asarray(counts), aggregate)


__all__ = ["OnnxPredictor", "onnx_modules", "run_onnx"]
