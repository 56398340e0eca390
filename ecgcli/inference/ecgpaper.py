"""An explanation drawn as a clinician reads an ECG: the standard 12-lead printout.

Layout: three rows of four 2.5 s panels (I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3,
V6, each column showing the next 2.5 s of the same 10 s) and a 10 s lead II rhythm strip
below (the model's first lead when it does not use II; leads a reduced-lead model does not
use are left blank), on ECG paper at 25 mm/s and 10 mm/mV: a 1 mm (0.04 s, 0.1 mV) minor
grid and a 5 mm (0.2 s, 0.5 mV) major grid. Everything is drawn in millimetres of paper, so
the scale is true at any output size. The first 10 s of the record are shown (for a longer
record the title says so and :func:`figure_note` is a line for the user); each lead is centred
on its median over them (an electrocardiograph's baseline restoration).

The attribution of a class is shaded behind the trace, per lead and time: red where the
signal raises the class's logit, blue where it lowers it, opacity in proportion to the
magnitude (smoothed over 40 ms, scaled to the 99th percentile of the 10 s shown, so the
largest contributions are fully coloured). One page per explained class, stacked.

matplotlib (the ``plots`` extra) is imported lazily; without it the error says what to install.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.files import atomic_write_bytes

if TYPE_CHECKING:
    from ecgcli.inference.explain import Explanation

MM_PER_S = 25.0
MM_PER_MV = 10.0
PANEL_S = 2.5
STRIP_S = 10.0
ROW_MM = 35.0
#: Leads of the three panel rows, column by column in time, as printed by electrocardiographs.
LAYOUT = (("I", "AVR", "V1", "V4"), ("II", "AVL", "V2", "V5"), ("III", "AVF", "V3", "V6"))
RHYTHM_LEAD = "II"
DISPLAY = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}
SMOOTH_S = 0.04
_MINOR, _MAJOR = "#f7caca", "#e79595"
_POS, _NEG = np.array([0.85, 0.1, 0.1]), np.array([0.1, 0.3, 0.9])


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or one line saying how to install it (the one
    place ecgcli imports matplotlib; ``ecg compare --plots`` uses it too)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError('plots need matplotlib: pip install "ecgcli[plots]"') from None
    return plt


def shown_seconds(expl: Explanation) -> float:
    """How many seconds of the record the figure draws (the first ``STRIP_S``, or all of a
    shorter record)."""
    return min(expl.signal.shape[1], round(STRIP_S * expl.fs)) / expl.fs


def figure_note(expl: Explanation) -> str | None:
    """One line for a record longer than the figure (None otherwise): which seconds are drawn,
    and that the probabilities and lead totals are still the whole record's, as predict's."""
    if expl.signal.shape[1] <= round(STRIP_S * expl.fs):
        return None
    shown, total = f"{shown_seconds(expl):g}", f"{round(expl.duration_s, 1):g}"
    return (
        f"{Path(expl.record).name} is {total} s long; the figure draws only its first {shown} s "
        f"(0-{shown} s); the probability in its title and the lead totals are for the whole "
        "record, as ecg predict scores it"
    )


def draw_explanation(expl: Explanation, path: Path | str, dpi: int = 110) -> Path:
    """Write the figure of ``expl`` to ``path`` (PNG, atomically); returns the path."""
    plt = pyplot()
    from matplotlib.collections import LineCollection

    width_mm, height_mm = STRIP_S * MM_PER_S, 4 * ROW_MM
    n = len(expl.classes)
    page_in = (height_mm + 14) / 25.4
    fig = plt.figure(figsize=((width_mm + 8) / 25.4, page_in * n))
    shown = round(shown_seconds(expl) * expl.fs)
    signal = expl.signal[:, :shown]
    part = f"  |  first {shown / expl.fs:g} s of {round(expl.duration_s, 1):g} s" if figure_note(expl) else ""
    signal = signal - np.median(signal, axis=1, keepdims=True)
    for page, name in enumerate(expl.classes):
        bottom = 1 - (page + 1) / n
        ax = fig.add_axes(
            (
                4 / (width_mm + 8),
                bottom + 2 / (page_in * 25.4 * n),
                width_mm / (width_mm + 8),
                height_mm / (page_in * 25.4 * n),
            )
        )
        ax.set_xlim(0, width_mm)
        ax.set_ylim(0, height_mm)
        ax.set_axis_off()
        _grid(ax, width_mm, height_mm, LineCollection)
        shade = _shading(expl.attributions[name][:, :shown], expl.fs)
        for row, leads in enumerate(LAYOUT):
            for col, lead in enumerate(leads):
                _panel(ax, signal, shade, expl.fs, expl.leads, lead, row, col * PANEL_S, PANEL_S)
        rhythm = RHYTHM_LEAD if RHYTHM_LEAD in expl.leads else expl.leads[0]
        _panel(ax, signal, shade, expl.fs, expl.leads, rhythm, 3, 0.0, STRIP_S)
        ax.set_xlim(0, width_mm)  # imshow rescales the axes; paper stays 250 x 140 mm
        ax.set_ylim(0, height_mm)
        p, t = expl.probabilities[name], expl.thresholds[name]
        verdict = "above" if p >= t else "below"
        method = "integrated gradients" if expl.method == "ig" else "gradient x input"
        ax.set_title(
            f"{Path(expl.record).name}: {name} p = {p:.2f} ({verdict} threshold {t:.2f}); {method} "
            f"of the {name} logit, red raises it, blue lowers it  |  25 mm/s, 10 mm/mV{part}",
            fontsize=8,
            loc="left",
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    try:
        atomic_write_bytes(Path(path), buf.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Path(path)


def _grid(ax, width: float, height: float, line_collection) -> None:
    """ECG paper: 1 mm minor and 5 mm major lines, as two line collections."""
    for step, colour, lw in ((1.0, _MINOR, 0.25), (5.0, _MAJOR, 0.5)):
        xs = np.arange(0, width + 1e-9, step)
        ys = np.arange(0, height + 1e-9, step)
        segs = [((x, 0), (x, height)) for x in xs] + [((0, y), (width, y)) for y in ys]
        ax.add_collection(line_collection(segs, colors=colour, linewidths=lw, zorder=0))


def _shading(attr: np.ndarray, fs: int) -> np.ndarray:
    """Attribution smoothed over ``SMOOTH_S`` and scaled to [-1, 1] by its 99th percentile."""
    from scipy.ndimage import uniform_filter1d

    size = max(1, round(SMOOTH_S * fs))
    smooth = uniform_filter1d(attr.astype(np.float64), size=size, axis=1, mode="nearest")
    scale = np.percentile(np.abs(smooth), 99) if smooth.size else 0.0
    return np.clip(smooth / scale, -1, 1) if scale > 0 else np.zeros_like(smooth)


def _panel(
    ax,
    signal: np.ndarray,
    shade: np.ndarray,
    fs: int,
    leads: tuple[str, ...],
    lead: str,
    row: int,
    t0: float,
    span: float,
):
    """One lead from ``t0`` for ``span`` seconds in ``row`` (0 at the top): shading, trace, label.
    A lead the model does not use (``--leads``) keeps its place, labelled "not used"."""
    y0 = (3.5 - row) * ROW_MM
    x0 = t0 * MM_PER_S
    if lead not in leads:
        ax.text(x0 + 1.5, y0 + ROW_MM * 0.3, f"{DISPLAY.get(lead, lead)} (not used)", fontsize=8, color="0.5")
        return
    i = leads.index(lead)
    a, b = round(t0 * fs), min(round((t0 + span) * fs), signal.shape[1])
    if b > a:
        v = shade[i, a:b]
        rgba = np.zeros((1, b - a, 4))
        rgba[0, :, :3] = np.where(v[:, None] >= 0, _POS, _NEG)
        rgba[0, :, 3] = 0.65 * np.abs(v)
        x1 = x0 + (b - a) / fs * MM_PER_S
        ax.imshow(
            rgba,
            extent=(x0, x1, y0 - ROW_MM / 2, y0 + ROW_MM / 2),
            aspect="auto",
            interpolation="nearest",
            zorder=1,
        )
        t = (np.arange(a, b) / fs) * MM_PER_S
        ax.plot(t, y0 + signal[i, a:b] * MM_PER_MV, color="black", lw=0.6, zorder=2)
    if t0 > 0:  # the short bar printers put where one lead's panel gives way to the next
        ax.plot([x0, x0], [y0 - 3, y0 + 3], color="black", lw=0.8, zorder=2)
    ax.text(x0 + 1.5, y0 + ROW_MM * 0.3, DISPLAY.get(lead, lead), fontsize=8, zorder=3)
