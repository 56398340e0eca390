"""Checkpoints: ``safetensors`` weights plus a JSON sidecar. Loading never unpickles.

``model.safetensors`` holds tensors only; ``model.json`` beside it holds everything needed to
rebuild and use the model: format and kind, architecture (registry name and arguments), class
names and order, leads, sampling rate and window, per-class thresholds, normalisation, the
training configuration, metrics, the data cache id, and library versions.

Kinds: ``classifier`` (encoder + head, ``linear`` or ``benchmark``; ``train supervised``, ``finetune``) and
``encoder`` (an SSL-pretrained encoder; ``train ssl``), ``ensemble`` (``ecg ensemble``: members'
tensors under ``member{i}.``, each member's sidecar in ``members``; loads as a classifier, see
:mod:`ecgcli.models.ensemble`).

The same two-file format stores a run's resume state (model, optimiser, best copy, history):
nested state dicts are flattened into tensors plus a JSON skeleton.
"""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ecgcli import __version__
from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.files import atomic_write_bytes, check_format_version, write_json_atomic

FORMAT = "ecgcli-checkpoint"
FORMAT_VERSION = 1
KINDS = ("classifier", "encoder", "features", "ensemble")
BUNDLE_FORMAT = "ecgcli-bundle"


def sidecar_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def versions() -> dict[str, str]:
    import numpy

    return {
        "ecgcli": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``path`` (safetensors) and its JSON sidecar, each atomically, sidecar last.

    The two files cannot be replaced in one step, so both carry the same random ``save_id``
    (in the safetensors header and in the sidecar): a kill between the two renames leaves a
    pair whose ids differ, which :func:`load_tensors` refuses instead of mixing two saves.
    """
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_id = uuid.uuid4().hex
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata={"format": FORMAT, "save_id": save_id}))
    write_json_atomic(sidecar_path(path), {**meta, "save_id": save_id})


def save_bundle(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors and their JSON metadata in *one* safetensors file (the metadata in its header),
    written by one atomic rename: a reader sees the old pair or the new pair, never a mix.
    Used for a run's resume state, which must never pair one epoch's weights with another
    epoch's progress."""
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": BUNDLE_FORMAT, "meta": json.dumps(meta, allow_nan=True)}
    atomic_write_bytes(Path(path), save(flat, metadata=header))


def load_bundle(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Tensors and metadata written by :func:`save_bundle`; None when ``path`` is a plain
    safetensors file without a bundled header (an older two-file save)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        if header.get("format") != BUNDLE_FORMAT:
            return None
        meta = json.loads(header["meta"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt (its metadata is not a JSON object)")
    return tensors, meta


def saved_id(path: Path) -> str | None:
    """The ``save_id`` in a safetensors file's header (None for files saved before ids)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("save_id")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors file and its sidecar; any problem is a :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: its sidecar {side.name} is missing (not an ecgcli checkpoint?)")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ecgcli checkpoint (sidecar format is not {FORMAT!r})")
    check_format_version(meta.get("format_version"), FORMAT_VERSION, path, "checkpoint")
    try:
        tensors = load_file(str(path))
        weights_id = saved_id(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights are corrupt or not safetensors ({exc})") from None
    if weights_id is not None and meta.get("save_id") != weights_id:
        raise CheckpointError(
            f"{path}: weights and sidecar {side.name} come from different saves (a save was "
            "interrupted between the two files); save or train this checkpoint again"
        )
    check_finite(tensors, path)
    return tensors, meta


def kind_phrase(kind: Any) -> str:
    """``'encoder'`` -> ``an 'encoder' checkpoint``: a checkpoint's kind in a sentence."""
    if kind is None:
        return "a checkpoint without a kind"
    article = "an" if str(kind)[:1].lower() in "aeiou" and str(kind) else "a"
    return f"{article} {kind!r} checkpoint"


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is an ecgcli checkpoint: its sidecar says so (the sidecar is read, not
    the weights, so this is cheap; the pair is still validated in full when loaded)."""
    try:
        meta = json.loads(sidecar_path(Path(path)).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def check_out_replaceable(path: Path, force: bool = False) -> None:
    """Refuse a training ``--out`` that would replace a file ecgcli did not write: the weights
    go to ``path`` and the sidecar to ``NAME.json`` beside it, so both are checked; an earlier
    checkpoint there is replaced silently, anything else only with ``force``."""
    from ecgcli.files import refuse_replacing

    path = Path(path)
    if path.suffix.lower() == ".json":
        raise ConfigError(
            f"--out {path}: ends in .json, the name of the sidecar written beside the weights; "
            "use a .safetensors name"
        )
    refuse_replacing(path, is_checkpoint, force, "an ecgcli checkpoint (no ecgcli sidecar beside it)")
    side = sidecar_path(path)
    refuse_replacing(side, lambda _: is_checkpoint(path), force, "an ecgcli sidecar", "--out's sidecar")


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse NaN or infinite weights at load: they would otherwise surface much later as a
    NaN loss (blamed on the learning rate) or NaN probabilities in ``predict``'s output."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: tensor {name!r} holds {bad} NaN or infinite value(s); "
                "this checkpoint is unusable (retrain, or use an earlier checkpoint)"
            )


def checkpoint_meta(kind: str, **fields: Any) -> dict[str, Any]:
    """A sidecar dict with the fields every checkpoint carries."""
    if kind not in KINDS:
        raise ValueError(kind)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **fields,
        "versions": versions(),
    }


def save_checkpoint(path: Path, module: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Save a model's ``state_dict`` and sidecar; returns the weights path."""
    save_tensors(Path(path), dict(module.state_dict()), meta)
    return Path(path)


def load_classifier(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a classifier from its checkpoint (eval mode, on CPU)."""
    from ecgcli.models import ECGClassifier

    tensors, meta = load_tensors(path)
    if meta.get("kind") == "ensemble":
        return _load_ensemble(tensors, meta, Path(path)), meta
    if meta.get("kind") != "classifier":
        raise CheckpointError(
            f"{path}: is {kind_phrase(meta.get('kind'))}, not a classifier "
            "(fine-tune an encoder with `ecg finetune` first)"
        )
    arch = meta.get("architecture") or {}
    try:
        model = ECGClassifier.build(
            arch["encoder"],
            n_classes=int(arch["n_classes"]),
            head=arch.get("head", "linear"),  # checkpoints from before heads were chosen: linear
            head_args=arch.get("head_args"),
            **arch["encoder_args"],
        )
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: sidecar architecture is incomplete ({exc})") from None
    except ConfigError as exc:
        raise CheckpointError(f"{path}: sidecar architecture does not build ({exc})") from None
    _load_state(model, tensors, path)
    return model.eval(), meta


def _load_ensemble(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> torch.nn.Module:
    """An ``ensemble`` checkpoint: each member rebuilt from its own sidecar in ``members``."""
    import numpy as np

    from ecgcli.models import ECGClassifier
    from ecgcli.models.ensemble import CalibratedMember, EnsembleClassifier

    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise CheckpointError(f"{path}: ensemble sidecar has no members")
    built = []
    for i, side in enumerate(members):
        try:
            arch = side["architecture"]
            model = ECGClassifier.build(
                arch["encoder"],
                n_classes=int(arch["n_classes"]),
                head=arch.get("head", "linear"),
                head_args=arch.get("head_args"),
                **arch["encoder_args"],
            )
            norm, temp = side["normalisation"], side.get("temperature")
            built.append(CalibratedMember(model, np.asarray(norm["mean"]), np.asarray(norm["std"]), temp))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: sidecar of member {i} is incomplete ({exc})") from None
        except ConfigError as exc:
            raise CheckpointError(f"{path}: member {i} does not build ({exc})") from None
    model = EnsembleClassifier(built)
    _load_state(model, tensors, path)
    return model.eval()


def load_encoder(
    path: Path, check: Callable[[dict[str, Any]], None] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a pretrained encoder from an ``encoder`` checkpoint (``ecg train ssl``).

    ``check(meta)`` runs on the sidecar before the weights are loaded, so a caller can refuse
    an encoder that does not fit its run with a precise message.
    """
    from ecgcli.models import build_encoder

    tensors, meta = load_tensors(path)
    if meta.get("kind") != "encoder":
        raise CheckpointError(
            f"{path}: is {kind_phrase(meta.get('kind'))}, not an encoder (pretrain one with `ecg train ssl`)"
        )
    if check is not None:
        check(meta)
    arch = meta.get("architecture") or {}
    try:
        encoder = build_encoder(arch["encoder"], **arch["encoder_args"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: sidecar architecture is incomplete ({exc})") from None
    except ConfigError as exc:
        raise CheckpointError(f"{path}: sidecar architecture does not build ({exc})") from None
    _load_state(encoder, tensors, path)
    return encoder, meta


def _load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{path}: weights do not fit the architecture ({detail[:200]})") from None


# --- nested state (optimiser, resume) <-> flat tensors + JSON skeleton ---------------------


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor in a nested dict/list into ``tensors``; return a JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _key(k: Any) -> Any:
    if isinstance(k, (int, str)):
        return k
    raise TypeError(f"cannot store a {type(k).__name__} key in a checkpoint")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            try:
                return tensors[skeleton["__tensor__"]]
            except KeyError:
                raise CheckpointError(f"state is missing tensor {skeleton['__tensor__']}") from None
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
    return skeleton
