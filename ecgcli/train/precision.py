"""``--precision auto|fp32|bf16|fp16``: the dtype training steps autocast to, per device.

Mixed precision runs matrix products and convolutions in a 16-bit type under
``torch.autocast`` while weights, the optimiser and the loss reduction stay fp32
(Micikevicius et al., "Mixed Precision Training", ICLR 2018). bf16 keeps fp32's exponent range,
so it needs no loss scaling; fp16 does (``GradScaler``, CUDA only).

What each device accepts:

- CUDA: ``auto`` is bf16 where the GPU supports it, else fp16 (the behaviour before this
  option existed); ``bf16`` needs a GPU that supports it.
- CPU: ``auto`` is bf16 where the CPU computes it natively, else fp32 (see
  :data:`CPU_AUTO_BF16`). ``bf16`` needs native bf16 arithmetic,
  the ``avx512_bf16`` or ``amx_bf16`` flags of ``/proc/cpuinfo``: elsewhere torch emulates bf16
  and it is slower than fp32, so it is refused; ``ECG_BF16_EMULATED=1`` allows it anyway, for
  accuracy experiments only. ``fp16`` needs ``amx_fp16`` or ``avx512_fp16``.
- Other devices (Apple MPS): fp32.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ecgcli.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: whether ``auto`` picks bf16 on CPUs with native bf16 (``avx512_bf16``/``amx_bf16``). On: on
#: such a CPU the 100%-label benchmark cell (resnet1d_wang, benchmark recipe, 10 epochs, one
#: thread) ran its first epoch 2.1x faster in bf16 (126.9 s against 267.9 s in fp32, same load)
#: and ended at the same fold-10 macro AUROC (0.926 both); see the docs' speed results.
#: ``--precision fp32`` is the way back. Elsewhere bf16 is emulated and slower, so auto is fp32.
CPU_AUTO_BF16 = True
EMULATED_ENV = "ECG_BF16_EMULATED"


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16_native() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and the evidence."""
    found = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if found:
        return True, " and ".join(found)
    return (
        False,
        f"no avx512_bf16 or amx_bf16 flag; torch CPU capability {torch.backends.cpu.get_cpu_capability()}",
    )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: plain fp32); an unsupported
    combination is a one-line :class:`ConfigError`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if precision == "auto":
            return torch.bfloat16 if bf16_ok else torch.float16
        if precision == "bf16" and not bf16_ok:
            raise ConfigError("--precision bf16: this GPU does not support bf16 (use fp16 or fp32)")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu":
        native, why = cpu_bf16_native()
        if precision == "auto":
            return torch.bfloat16 if native and CPU_AUTO_BF16 else None
        if precision == "bf16":
            if native or os.environ.get(EMULATED_ENV) == "1":
                return torch.bfloat16
            raise ConfigError(
                f"--precision bf16: this CPU has no native bf16 ({why}); emulated bf16 is slower than "
                "fp32, use --precision fp32 or auto"
            )
        if cpu_flags() & {"amx_fp16", "avx512_fp16"}:
            return torch.float16
        raise ConfigError("--precision fp16: this CPU has no native fp16 arithmetic; use fp32 or auto")
    if precision == "auto":
        return None
    raise ConfigError(
        f"--precision {precision}: mixed precision runs on CUDA or the CPU, not on {device.type}"
    )
