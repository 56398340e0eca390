"""Trained models that ship inside the package, by name: ``ecg predict -c ptbxl-all``.

Each model is a folder beside this file (``model.safetensors`` + ``model.json``, the same
two-file checkpoint every run writes; ``model.onnx`` for the ONNX runtime; ``MODEL_CARD.md``;
``reference.json``, the probabilities it gave the example records when it was built), listed in
``manifest.json`` with each file's sha256. A name resolves only after its files match their
checksums, so an edited or truncated file is refused before anything reads it; a file that
is missing from the install is refused the same way.

Why a manifest rather than globbing the folders: the card numbers a user sees in ``ecg models
--pretrained`` (fold-10 AUROC with its bootstrap interval, ECE) and the checksums live in one
reviewed file, written by ``scripts/build_pretrained.py`` from the run that trained the model.

Knows nothing of torch: resolving a name is hashing a few megabytes, so ``ecg predict`` with
the ONNX runtime never imports torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ecgcli.errors import CheckpointError, ConfigError

MANIFEST_FORMAT = "ecgcli-pretrained"
MANIFEST_VERSION = 1
#: file roles a model folder may hold, and the file name of each
FILE_NAMES = {
    "weights": "model.safetensors",
    "sidecar": "model.json",
    "onnx": "model.onnx",
    "card": "MODEL_CARD.md",
    "reference": "reference.json",
}
_here = Path(__file__).resolve().parent


def zoo_dir() -> Path:
    """The folder holding ``manifest.json`` and the model folders (the installed package's)."""
    return _here


@dataclass(frozen=True)
class ShippedModel:
    """One entry of the manifest: what the model is, its files, and its fold-10 numbers."""

    name: str
    kind: str  # "classifier" or "encoder"
    task: str
    summary: str
    classes: tuple[str, ...]
    leads: tuple[str, ...]
    sampling_rate: int
    files: dict[str, dict[str, Any]]
    fold10: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        """Where the file of ``role`` lies (whether or not it is there)."""
        entry = self.files.get(role)
        if entry is None:
            raise CheckpointError(f"the shipped model {self.name} has no {role} file")
        return zoo_dir() / entry["path"]

    def has(self, role: str) -> bool:
        return role in self.files

    @property
    def size_bytes(self) -> int:
        """Bytes the model's files take in the package."""
        return sum(int(f["bytes"]) for f in self.files.values())

    def verified(self, role: str) -> Path:
        """The file of ``role`` after checking its sha256 against the manifest."""
        path = self.path(role)
        expected = self.files[role]["sha256"]
        try:
            actual = sha256_file(path)
        except OSError:
            raise CheckpointError(
                f"the shipped model {self.name} is incomplete: {path.name} is missing from the "
                "installed package (reinstall ecgcli)"
            ) from None
        if actual != expected:
            raise CheckpointError(
                f"the shipped model {self.name} is damaged: {path.name} does not match its "
                "checksum in the manifest (edited or corrupted; reinstall ecgcli)"
            )
        return path

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "task": self.task,
            "summary": self.summary,
            "classes": list(self.classes),
            "leads": list(self.leads),
            "sampling_rate": self.sampling_rate,
            "size_bytes": self.size_bytes,
            "fold10": self.fold10,
            **self.extra,
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@cache
def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "default": None, "models": {}}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"the shipped models' manifest {path} cannot be read ({exc})") from None
    if doc.get("format") != MANIFEST_FORMAT or doc.get("version") != MANIFEST_VERSION:
        raise CheckpointError(f"{path} is not a version-{MANIFEST_VERSION} manifest of shipped models")
    return doc


def shipped() -> list[ShippedModel]:
    """Every model in the manifest, in its order."""
    doc = _manifest(zoo_dir())
    return [
        ShippedModel(
            name=name,
            kind=m["kind"],
            task=m["task"],
            summary=m.get("summary", ""),
            classes=tuple(m.get("classes", ())),
            leads=tuple(m.get("leads", ())),
            sampling_rate=int(m.get("sampling_rate", 100)),
            files=m["files"],
            fold10=m.get("fold10", {}),
            extra=m.get("extra", {}),
        )
        for name, m in doc["models"].items()
    ]


def names() -> list[str]:
    return [m.name for m in shipped()]


def default_classifier() -> str | None:
    """The model ``ecg predict`` uses when neither ``-c`` nor ``ECG_CHECKPOINT`` names one."""
    return _manifest(zoo_dir()).get("default")


def get(name: str) -> ShippedModel:
    """The shipped model ``name``; an unknown name is one line listing the shipped ones."""
    for m in shipped():
        if m.name == name:
            return m
    listed = ", ".join(names()) or "none in this install"
    raise ConfigError(f"no shipped model named {name!r} (shipped: {listed})")


def looks_like_name(value: str | Path) -> bool:
    """A bare word such as ``ptbxl-all``: no folder part, no file suffix."""
    text = str(value)
    return "/" not in text and "\\" not in text and Path(text).suffix == "" and text not in (".", "..")


def named(value: str | Path) -> ShippedModel | None:
    """The shipped model ``value`` names, or None when it names a path: a path that exists wins
    (a user's own file is never shadowed by a shipped name), and so does anything that is not a
    bare word. An unknown bare word is one line listing the shipped names."""
    if Path(value).exists() or not looks_like_name(value):
        return None
    return get(str(value))


def resolve(value: str | Path, *, kind: str = "classifier", runtime: str = "torch") -> Path:
    """The checkpoint file for ``value``: a path that exists wins (a user's own file is never
    shadowed by a shipped name); else a shipped model's name, its files verified. Anything else
    is left to the loader, which names the missing path, unless it looks like a model name,
    which gets the list of shipped names."""
    model = named(value)
    if model is None:
        return Path(value)
    if model.kind != kind:
        if model.kind == "encoder":
            raise ConfigError(
                f"{model.name} is a pretrained encoder, not a classifier: fine-tune it with "
                f"`ecg finetune --ssl-checkpoint {model.name}`"
            )
        raise ConfigError(f"{model.name} is a {model.kind}, where a pretrained encoder is needed")
    if runtime == "onnx":
        if not model.has("onnx"):
            raise ConfigError(f"the shipped model {model.name} has no ONNX file; use --runtime torch")
        return model.verified("onnx")
    model.verified("sidecar")
    return model.verified("weights")


def card_text(name: str) -> str:
    """The model card (markdown) of ``name``, checksum verified."""
    model = get(name)
    if not model.has("card"):
        raise CheckpointError(f"the shipped model {name} has no model card in this install")
    return model.verified("card").read_text(encoding="utf-8")


def reference(name: str) -> dict[str, Any]:
    """The probabilities ``name`` gave the example records when it was built."""
    return json.loads(get(name).verified("reference").read_text(encoding="utf-8"))
