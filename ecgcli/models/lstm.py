"""Recurrent baselines of the PTB-XL benchmark (Strodthoff et al. 2021): a two-layer LSTM
(Hochreiter & Schmidhuber 1997) read over the raw samples, one direction (``lstm``) or both
(``lstm_bidir``, Schuster & Paliwal 1997).

The 12 leads at each time step are the LSTM's input vector; the hidden states of the last
layer at every step form the feature map. ``(B, in_ch, T)`` -> ``(B, T, in_ch)`` -> LSTM ->
``(B, width * directions, T)``: 256 channels (512 bidirectional) at each of the T steps, no
downsampling, so cost grows linearly with T and cannot be parallelised over time.

The benchmark's head for these models pools the last step too (the final hidden state; for
the bidirectional one, the forward direction's last step and the backward direction's first);
``last_step`` says which, and :class:`ecgcli.models.heads.ConcatPoolHead` uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder


def _cpu_lstm_bf16() -> bool:
    """Whether this CPU's oneDNN can run an LSTM in bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class LSTMEncoder(Encoder):
    """``layers`` stacked LSTMs of ``width`` hidden units, batch first."""

    config_keys = ("in_ch", "width", "layers")

    bidirectional = False

    def __init__(self, in_ch: int = 12, width: int = 256, layers: int = 2) -> None:
        super().__init__()
        if in_ch < 1 or width < 1 or layers < 1:
            raise ConfigError(f"lstm needs in_ch, width and layers >= 1, got {in_ch}, {width}, {layers}")
        self.in_ch, self.width, self.layers = in_ch, width, layers
        self.lstm = nn.LSTM(
            in_ch, width, num_layers=layers, batch_first=True, bidirectional=self.bidirectional
        )
        self.out_dim = width * (2 if self.bidirectional else 1)
        self.last_step = "bidirectional" if self.bidirectional else "forward"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not _cpu_lstm_bf16():
            # oneDNN has no bf16 LSTM on CPUs without AVX512-BF16 / AMX (it refuses with an
            # opaque error), so under bf16 autocast on such a CPU the LSTM runs in fp32
            with torch.autocast("cpu", enabled=False):
                out, _ = self.lstm(x.float())
        else:
            out, _ = self.lstm(x)
        return out.transpose(1, 2)


class BiLSTMEncoder(LSTMEncoder):
    """The same, reading the record in both directions; features of both concatenated."""

    bidirectional = True
