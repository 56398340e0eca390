"""Reading WFDB records: headers, raw samples, lead names and units.

PTB-XL's records are all format 16 (little-endian int16, channels interleaved in one ``.dat``),
which we read with one ``numpy.fromfile`` after parsing the header ourselves: about 100x faster
than ``wfdb.rdsamp``. Any other layout (other formats, skew, byte offsets, several signal files,
multi-segment records) falls back to ``wfdb.rdrecord``, so every record WFDB can read is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ecgcli import LEADS
from ecgcli.data.leads import canonical_lead, holter_lead
from ecgcli.errors import RecordError

#: WFDB marks a missing sample with the most negative value of the storage format.
INVALID_INT16 = -32768
_DEFAULT_GAIN = 200.0  # WFDB's default ADC gain when a header gives 0 or none
_UNIT_SCALE_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
_GAIN_RE = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(.*))?$")


def lead_order(sig_names: tuple[str, ...] | list[str], record: str) -> np.ndarray:
    """Channel index of each of the 12 standard leads; extra channels are ignored.

    Raises :class:`RecordError` naming the leads that are missing.
    """
    return match_leads(sig_names, record)[0]


def match_leads(
    sig_names: tuple[str, ...] | list[str], record: str, leads: tuple[str, ...] = LEADS
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Channel index of each of ``leads`` (a model's leads), and a warning per lead taken from
    a modified Holter channel (``MLII`` for II) because the record has no such standard lead.

    Raises :class:`RecordError` naming the leads that are missing.
    """
    order, missing, holter = _match_leads(tuple(sig_names), tuple(leads))
    if missing:
        need = "" if tuple(leads) == LEADS else f"; the model uses {', '.join(leads)}"
        raise RecordError(
            record,
            f"missing lead(s) {', '.join(missing)} (has {', '.join(sig_names) or 'no channels'}{need})",
        )
    warnings = tuple(
        f"{record}: channel {name} is a modified lead, used as lead {lead}" for name, lead in holter
    )
    return order, warnings


@lru_cache(maxsize=64)  # a dataset's records nearly always share one list of lead names
def _match_leads(
    sig_names: tuple[str, ...], leads: tuple[str, ...]
) -> tuple[np.ndarray, tuple[str, ...], tuple[tuple[str, str], ...]]:
    found: dict[str, int] = {}
    for i, name in enumerate(sig_names):
        lead = canonical_lead(name)
        if lead is not None and lead not in found:
            found[lead] = i
    holter: list[tuple[str, str]] = []
    for i, name in enumerate(sig_names):  # a modified lead only where the standard one is absent
        lead = holter_lead(name)
        if lead is not None and lead not in found:
            found[lead] = i
            holter.append((name, lead))
    missing = tuple(lead for lead in leads if lead not in found)
    order = np.array([found.get(lead, -1) for lead in leads])
    order.flags.writeable = False  # shared between calls through the cache
    used = tuple((name, lead) for name, lead in holter if lead in leads)
    return order, missing, used


@dataclass(frozen=True)
class Header:
    """What a WFDB header says about a single-segment record."""

    record: str
    fs: float
    n_samples: int | None
    sig_names: tuple[str, ...]
    units: tuple[str, ...]
    gains: np.ndarray
    baselines: np.ndarray
    formats: tuple[str, ...]
    files: tuple[str, ...]
    multi_segment: bool = False
    #: the record's own labels, from a ``# Labels: A,B`` comment line (as the example records
    #: carry them), or None when the header has none
    labels: tuple[str, ...] | None = None
    #: its PTB-XL statements, from a ``# Statements: IMI(100), SR(0)`` comment line, or None
    statements: tuple[str, ...] | None = None

    @property
    def n_sig(self) -> int:
        return len(self.sig_names)

    @property
    def fast_path(self) -> bool:
        """True when the samples are plain interleaved int16 in one file we can map directly."""
        return (
            not self.multi_segment
            and self.n_sig > 0
            and all(f == "16" for f in self.formats)
            and len(set(self.files)) == 1
        )

    def mv_per_unit(self) -> np.ndarray:
        """Factor turning each channel's physical unit into millivolts (NaN if not a voltage)."""
        return np.array([_UNIT_SCALE_TO_MV.get(u.lower(), np.nan) for u in self.units])


def file_stamp(stem: Path | str, missing: str = "missing") -> list[str]:
    """Size and modification time (ns) of a record's ``.hea`` and ``.dat``, ``missing`` for an
    absent file: what tells a cache that a record's files changed without reading them."""
    parts: list[str] = []
    for suffix in (".hea", ".dat"):
        try:
            st = os.stat(f"{stem}{suffix}")
            parts += [str(st.st_size), str(st.st_mtime_ns)]
        except OSError:
            parts.append(missing)
    return parts


def read_header(path: Path) -> Header:
    """Parse ``path`` (a ``.hea`` file) following the WFDB header specification."""
    record = str(path.with_suffix(""))
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError:
        raise RecordError(record, "header (.hea) not found") from None
    except OSError as exc:
        raise RecordError(record, f"header unreadable ({exc.strerror})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    comments = [ln for ln in lines if ln.startswith("#")]
    labels, statements = header_labels(comments), header_statements(comments)
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise RecordError(record, "header is empty")
    head = lines[0].split()
    try:
        multi = "/" in head[0]
        n_sig = int(head[1])
        fs = float(head[2].split("/")[0].split("(")[0]) if len(head) > 2 else 250.0
        n_samples = int(head[3]) if len(head) > 3 else None
    except (IndexError, ValueError):
        raise RecordError(record, f"corrupt header record line {lines[0][:60]!r}") from None
    if multi:
        return Header(record, fs, n_samples, (), (), np.zeros(0), np.zeros(0), (), (), True)
    if fs <= 0 or n_sig < 0 or (n_samples is not None and n_samples < 0):
        raise RecordError(record, f"corrupt header record line {lines[0][:60]!r}")
    if len(lines) < 1 + n_sig:
        raise RecordError(record, f"header declares {n_sig} signals but describes {len(lines) - 1}")
    names, units, gains, baselines, formats, files = [], [], [], [], [], []
    for i, line in enumerate(lines[1 : 1 + n_sig]):
        parts = line.split(maxsplit=8)
        try:
            files.append(parts[0])
            formats.append(parts[1])
            gain, baseline, unit = 0.0, None, "mV"
            if len(parts) > 2:
                m = _GAIN_RE.match(parts[2])
                if m is None:
                    raise ValueError(parts[2])
                gain = float(m.group(1))
                baseline = int(m.group(2)) if m.group(2) is not None else None
                unit = m.group(3) or "mV"
            adc_zero = int(parts[4]) if len(parts) > 4 else 0
        except (IndexError, ValueError):
            raise RecordError(record, f"corrupt header signal line {i + 1}: {line[:60]!r}") from None
        gains.append(gain if gain != 0 else _DEFAULT_GAIN)
        baselines.append(baseline if baseline is not None else adc_zero)
        units.append(unit)
        names.append(parts[8].strip() if len(parts) > 8 else f"ch{i + 1}")
    return Header(
        record,
        fs,
        n_samples,
        tuple(names),
        tuple(units),
        np.asarray(gains, dtype=np.float64),
        np.asarray(baselines, dtype=np.float64),
        tuple(formats),
        tuple(files),
        labels=labels,
        statements=statements,
    )


def _comment(comments: Iterable[str], name: str) -> str | None:
    """The value of the first ``# Name: value`` comment line, or None."""
    for line in comments:
        key, sep, value = line.lstrip("#").strip().partition(":")
        if sep and key.strip().lower() == name:
            return value
    return None


def header_statements(comments: Iterable[str]) -> tuple[str, ...] | None:
    """The PTB-XL statements a ``# Statements: ASMI(50), SR(0)`` comment line names (their
    likelihoods dropped), or None when no comment says."""
    value = _comment(comments, "statements")
    if value is None:
        return None
    return tuple(v.split("(")[0].strip() for v in value.split(",") if v.split("(")[0].strip())


def record_labels(
    labels: tuple[str, ...] | None, statements: tuple[str, ...] | None, class_names: Sequence[str]
) -> tuple[str, ...] | None:
    """A record's own labels in a model's vocabulary, to print beside its call: the ``# Labels:``
    classes when the model knows every one of them (PTB-XL's superclasses), else the record's
    statements that the model predicts (a model of statements: all 71, form, rhythm), else the
    labels as written."""
    known = set(class_names)
    if labels is not None and set(labels) <= known:
        return labels
    if statements is not None:
        return tuple(s for s in statements if s in known)
    return labels


def header_labels(comments: Iterable[str]) -> tuple[str, ...] | None:
    """The classes a ``# Labels: NORM,MI`` comment line names (``none`` for none), or None
    when no comment says: what ``ecg predict`` prints beside its own call."""
    value = _comment(comments, "labels")
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    return () if names in ((), ("none",)) else names


def read_adc(stem: Path, header: Header | None = None) -> tuple[np.ndarray, Header]:
    """Raw samples ``(n_sig, n_samples)`` as int16 plus the header that scales them.

    Values equal to :data:`INVALID_INT16` are missing samples. Samples that do not fit int16
    (formats 24 and 32) are re-quantised to 1 µV, and the returned header says so.
    """
    header = header or read_header(stem.with_suffix(".hea"))
    record = header.record
    if header.multi_segment:
        return _read_with_wfdb(stem, header)
    if header.n_sig == 0:
        raise RecordError(record, "header lists no signals")
    if not header.fast_path:
        return _read_with_wfdb(stem, header)
    dat = stem.parent / header.files[0]
    try:
        raw = np.fromfile(dat, dtype="<i2")
    except FileNotFoundError:
        raise RecordError(record, f"signal file {dat.name} not found") from None
    except OSError as exc:
        raise RecordError(record, f"signal file {dat.name} unreadable ({exc.strerror})") from None
    n = header.n_samples if header.n_samples is not None else len(raw) // header.n_sig
    need = n * header.n_sig
    if len(raw) < need:
        raise RecordError(
            record,
            f"truncated {dat.name}: {2 * len(raw)} bytes, header needs {2 * need}",
        )
    adc = raw[:need].reshape(n, header.n_sig).T
    return np.ascontiguousarray(adc), header


def _read_with_wfdb(stem: Path, header: Header) -> tuple[np.ndarray, Header]:
    import wfdb

    try:
        rec = wfdb.rdrecord(str(stem), physical=False, return_res=32)
    except FileNotFoundError as exc:
        raise RecordError(header.record, f"file not found: {Path(str(exc.filename)).name}") from None
    except Exception as exc:  # wfdb raises many types for malformed files
        raise RecordError(header.record, f"wfdb cannot read it ({type(exc).__name__}: {exc})") from None
    d = np.asarray(rec.d_signal).T
    names = tuple(rec.sig_name or ())
    units = tuple(rec.units or ("mV",) * len(names))
    gains = np.asarray(rec.adc_gain, dtype=np.float64)
    gains[gains == 0] = _DEFAULT_GAIN
    baselines = np.asarray(rec.baseline, dtype=np.float64)
    n = d.shape[1]
    fixed = Header(
        header.record,
        float(rec.fs),
        n,
        names,
        units,
        gains,
        baselines,
        tuple(str(f) for f in (rec.fmt or ())),
        tuple(rec.file_name or ()),
    )
    invalid = d == np.iinfo(np.int32).min
    if d.size and d.min() >= -32767 and d.max() <= 32767:
        out = d.astype(np.int16)
        out[invalid] = INVALID_INT16
        return out, fixed
    # Re-quantise wide formats to 1 µV steps so every cache stores int16.
    mv = (d - baselines[:, None]) / gains[:, None] * fixed.mv_per_unit()[:, None]
    out = np.clip(np.round(mv * 1000.0), -32767, 32767).astype(np.int16)
    out[invalid] = INVALID_INT16
    requant = Header(
        header.record,
        fixed.fs,
        n,
        names,
        ("mV",) * len(names),
        np.full(len(names), 1000.0),
        np.zeros(len(names)),
        fixed.formats,
        fixed.files,
    )
    return out, requant


def to_millivolts(adc: np.ndarray, header: Header) -> np.ndarray:
    """Physical signal in mV as float32, with missing samples as NaN."""
    scale = header.mv_per_unit() / header.gains
    mv = (adc.astype(np.float32) - header.baselines[:, None].astype(np.float32)) * scale[:, None].astype(
        np.float32
    )
    mv[adc == INVALID_INT16] = np.nan
    return mv


def read_standard_record(
    stem: Path, sampling_rate: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Header]:
    """A PTB-XL-shaped record: int16 ``(12, length)`` in standard lead order, its per-lead
    gain in ADC units per mV and baseline, and the header.

    Raises :class:`RecordError` when the rate, length or leads are not what the dataset needs.
    """
    adc, header = read_adc(Path(stem))
    if abs(header.fs - sampling_rate) > 1e-6:
        raise RecordError(header.record, f"sampled at {header.fs:g} Hz, expected {sampling_rate} Hz")
    if adc.shape[1] != length:
        raise RecordError(header.record, f"has {adc.shape[1]} samples, expected {length}")
    if header.n_sig < len(LEADS):
        raise RecordError(header.record, f"has {header.n_sig} leads, expected 12")
    order = lead_order(header.sig_names, header.record)
    gain_mv = header.gains[order] / header.mv_per_unit()[order]
    if not np.isfinite(gain_mv).all():
        bad = sorted({header.units[i] for i in order if not np.isfinite(header.mv_per_unit()[i])})
        raise RecordError(header.record, f"units {', '.join(bad)} are not a voltage")
    return adc[order], gain_mv, header.baselines[order], header


def read_record(stem: Path) -> tuple[np.ndarray, Header]:
    """A record's signal in mV, ``(n_sig, n_samples)`` float32, and its header."""
    adc, header = read_adc(Path(stem))
    return to_millivolts(adc, header), header


# ---------------------------------------------------------------------------------------------
# Preparing foreign records for ``ecg predict``: any rate, any lead order, any length.


def resolve_records(paths: list[Path] | tuple[Path, ...] | list[str]) -> list[Path]:
    """Record stems (paths without suffix) for what a user typed on the command line.

    Each argument may be a ``.hea`` file, a ``.dat`` file (its header must sit beside it), a
    record name without suffix, or a folder, which stands for every record under it (found
    by its ``*.hea`` files, recursively, sorted). Order is kept and repeats are dropped, so
    ``ecg predict dir dir/rec`` predicts ``rec`` once. Anything else raises
    :class:`RecordError` before any record is read, so a typo fails fast.
    """
    found = resolve_record_args(paths)
    for item in found:
        if isinstance(item, RecordError):
            raise item
    return found  # type: ignore[return-value]


def resolve_record_args(paths: list[Path] | tuple[Path, ...] | list[str]) -> list[Path | RecordError]:
    """:func:`resolve_records`, except that an argument naming no record becomes its
    :class:`RecordError` in its place instead of stopping the others: ``ecg predict`` reports
    it as that record's failure (its path in the record column) and scores the rest."""
    stems: list[Path | RecordError] = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p.with_suffix("") for p in path.rglob("*.hea") if p.is_file())
            if not found:
                stems.append(RecordError(str(path), "folder has no WFDB records (no .hea files under it)"))
            stems.extend(found)
        elif path.suffix == ".hea" and path.is_file():
            stems.append(path.with_suffix(""))
        elif path.suffix == ".dat" and path.is_file():
            if not path.with_suffix(".hea").is_file():
                stems.append(RecordError(str(path), f"no header {path.with_suffix('.hea').name} beside it"))
            else:
                stems.append(path.with_suffix(""))
        elif Path(f"{path}.hea").is_file():  # a record name; it may itself contain dots
            stems.append(path)
        else:
            stems.append(
                RecordError(str(path), "no such record (expected .hea, .dat, a record name or a folder)")
            )
    seen: set[Path] = set()
    unique: list[Path | RecordError] = []
    for item in stems:
        if isinstance(item, Path):
            if item in seen:
                continue
            seen.add(item)
        unique.append(item)
    return unique


@dataclass(frozen=True, eq=False)
class PreparedRecord:
    """One record as the model sees it: the model's leads in standard order, at ``fs_out``, in
    windows.

    ``windows`` is ``(n_windows, n_leads, window)`` float32 in mV. ``padded`` says the record
    was shorter than one window and was zero-padded at the end; ``n_samples_out`` is the length
    after resampling, before windowing or padding; ``warnings`` name channels used for a lead
    they only stand in for (modified Holter leads). ``flat_leads`` are the leads whose every
    sample is the same value (a lead off, a zeroed channel): what a caller makes of them is
    its policy (``ecg predict`` warns, or refuses a record with no other lead).
    """

    stem: Path
    windows: np.ndarray
    fs_in: float
    fs_out: int
    n_samples_in: int
    padded: bool
    n_windows: int
    n_samples_out: int
    warnings: tuple[str, ...] = ()
    stride: int | None = None
    flat_leads: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None  # the header's own (``# Labels:``), if it has any
    statements: tuple[str, ...] | None = None  # and its statements (``# Statements:``)

    @property
    def starts(self) -> np.ndarray:
        """Sample offset (at ``fs_out``) where each window begins; see :func:`window_starts`."""
        window = self.windows.shape[-1]
        return window_starts(max(self.n_samples_out, window), window, self.stride)


def window_starts(n_samples: int, window: int, stride: int | None = None) -> np.ndarray:
    """Where the windows of ``window`` samples begin: every ``stride`` samples (default: the
    window, so consecutive and non-overlapping).

    Rule for the remainder: when the length is not a multiple of the window, one more window
    is added, *aligned to the end* of the record (it overlaps the one before). Dropping the
    tail instead would leave up to a window's worth of signal (several seconds) unexamined,
    and a finding there would be silently missed; the overlap only repeats some signal. A
    record shorter than one window gets a single window at 0 (it is zero-padded).
    """
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - window + 1, stride or window, dtype=np.int64)
    if starts[-1] + window < n_samples:
        starts = np.append(starts, n_samples - window)
    return starts


def prepare_record(
    stem: Path | str,
    fs: int,
    window: int,
    leads: tuple[str, ...] = LEADS,
    stride: int | None = None,
    min_seconds: float = 0.0,
) -> PreparedRecord:
    """Read a WFDB record from any database or device and cut it into model windows.

    Steps: read and scale to mV (:func:`read_record`, which honours the header's units, so
    µV and V records arrive in mV); pick the 12 standard leads by name whatever their order
    or spelling, ignoring extra channels (:func:`match_leads`; ``leads`` are the model's, a
    subset of the 12 in PTB-XL order, and a modified Holter channel stands in for a missing
    lead with a warning); refuse empty records and
    missing (NaN) samples rather than guess values; resample to ``fs`` with a polyphase
    anti-aliasing filter (``scipy.signal.resample_poly``) at the exact rational ratio
    ``fs / fs_in`` (denominator at most 1000; rates such as 257 Hz are exact); then window
    with :func:`window_starts`. A record shorter than ``min_seconds`` is refused before it
    is resampled: padded to a window it would be scored as mostly zeros.

    ``resample_poly`` is run with ``padtype="line"``: the signal beyond the ends is taken
    to continue the line between the first and last sample, so a baseline offset does not
    look like a step to the filter and ring into the first and last window.
    """
    from fractions import Fraction

    from ecgcli.errors import ConfigError

    if int(fs) != fs or fs <= 0:
        raise ConfigError(f"target sampling rate must be a positive integer, got {fs}")
    if int(window) != window or window <= 0:
        raise ConfigError(f"window must be a positive number of samples, got {window}")
    fs, window = int(fs), int(window)
    signal, header = read_record(Path(stem))
    record = header.record
    order, warnings = match_leads(header.sig_names, record, tuple(leads))
    scale = header.mv_per_unit()[order]
    if not np.isfinite(scale).all():
        bad = [f"{leads[i]} ({header.units[ch]})" for i, ch in enumerate(order) if not np.isfinite(scale[i])]
        raise RecordError(record, f"units of lead(s) {', '.join(bad)} are not a voltage")
    x = signal[order]
    n_in = x.shape[1]
    if n_in == 0:
        raise RecordError(record, "record has no samples")
    if n_in / header.fs < min_seconds - 1e-9:
        raise RecordError(
            record,
            f"too short: {n_in / header.fs:.3g} s long ({n_in} sample{'s' if n_in != 1 else ''} at "
            f"{header.fs:g} Hz); the model needs at least {min_seconds:g} s (its window is "
            f"{window / fs:g} s, and shorter records are zero-padded to it)",
        )
    missing = np.isnan(x).sum(axis=1)
    if missing.any():
        where = ", ".join(f"{leads[i]}: {int(k)}" for i, k in enumerate(missing) if k)
        raise RecordError(record, f"{int(missing.sum())} missing (NaN) samples (lead {where})")
    flat = x.max(axis=1) == x.min(axis=1)  # one pass per lead, before the filter smears it
    ratio = (Fraction(fs) / Fraction(header.fs)).limit_denominator(1000)
    if ratio != 1:
        from scipy.signal import resample_poly  # imported only when needed: it costs ~0.5 s

        x = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator, axis=1, padtype="line")
    n_out = x.shape[1]
    padded = n_out < window
    if padded:
        x = np.pad(x, ((0, 0), (0, window - n_out)))
    starts = window_starts(x.shape[1], window, stride)
    # (leads, K, window) gathered in one indexing operation, then windows first.
    windows = x[:, starts[:, None] + np.arange(window)].transpose(1, 0, 2)
    return PreparedRecord(
        stem=Path(stem),
        windows=np.ascontiguousarray(windows, dtype=np.float32),
        fs_in=float(header.fs),
        fs_out=fs,
        n_samples_in=int(n_in),
        padded=bool(padded),
        n_windows=len(starts),
        n_samples_out=int(n_out),
        warnings=warnings,
        stride=stride,
        flat_leads=tuple(lead for lead, f in zip(leads, flat, strict=True) if f),
        labels=header.labels,
        statements=header.statements,
    )
