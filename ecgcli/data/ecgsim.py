"""A small 12-lead ECG simulator for the synthetic PTB-XL: a cardiac dipole model.

The heart's electrical activity is a 3-D vector (x: patient's left, y: inferior, z: anterior)
made of Gaussian waves (P, septal Q, R, S, ST, T) repeated at every beat; each lead sees the
vector's projection onto its lead vector. Einthoven's relations between limb leads therefore
hold exactly, and a change of the vector shows up coherently across leads, as in a real ECG.

Diagnostic SCP codes change the waves in the way a cardiologist would look for them:
pathological Q waves, lost R and ST elevation or T inversion in an infarct territory (MI), ST
depression and T inversion or flattening (STTC), high QRS voltage and atrial enlargement (HYP),
wide QRS, an R' wave, axis shifts and long PR (CD). Rhythm and form statements change the
rhythm and the whole beat: atrial fibrillation (irregular RR, no P waves, f-waves), sinus
arrhythmia (a strong respiratory RR modulation), premature ventricular complexes (an early,
wide beat without P wave, then a compensatory pause), low QRS voltage, inverted T waves.
Severity is random per record, heart rate varies beat to beat, and baseline wander, noise
and muscle bursts are added, so a model must learn morphology rather than a trivial cue.
Everything is drawn from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_S60, _C60 = np.sin(np.pi / 3), np.cos(np.pi / 3)
_PRECORDIAL = ((115, 1.1), (95, 1.5), (75, 1.5), (55, 1.45), (30, 1.25), (5, 1.05))
#: Lead vectors (12 x 3) in PTB-XL order I II III AVR AVL AVF V1..V6.
LEAD_VECTORS = np.array(
    [
        (1.0, 0.0, 0.0),
        (_C60, _S60, 0.0),
        (_C60 - 1.0, _S60, 0.0),
        (-(1.0 + _C60) / 2, -_S60 / 2, 0.0),
        (1.0 - _C60 / 2, -_S60 / 2, 0.0),
        (_C60 - 0.5, _S60, 0.0),
    ]
    + [(g * np.cos(np.radians(a)), 0.15 * g, g * np.sin(np.radians(a))) for a, g in _PRECORDIAL]
)

#: Leads in which a normal T wave is upright: all but aVR, III and V1.
T_UPRIGHT_LEADS = (0, 1, 4, 5, 7, 8, 9, 10, 11)

#: Infarct / ischaemia territories as unit-ish directions of the dipole space.
TERRITORY = {
    "inferior": (0.0, 1.0, 0.0),
    "anterior": (-0.1, -0.1, 1.0),
    "anteroseptal": (-0.55, 0.0, 0.85),
    "lateral": (0.9, -0.4, 0.15),
    "anterolateral": (0.6, -0.2, 0.75),
    "inferolateral": (0.65, 0.75, 0.0),
    "posterior": (0.0, 0.2, -1.0),
    "diffuse": (0.55, 0.45, 0.55),
}
MI_TERRITORY = {
    "IMI": "inferior",
    "ASMI": "anteroseptal",
    "ILMI": "inferolateral",
    "AMI": "anterior",
    "ALMI": "anterolateral",
    "LMI": "lateral",
    "IPLMI": "inferolateral",
    "IPMI": "inferior",
    "PMI": "posterior",
    "INJAS": "anteroseptal",
    "INJAL": "anterolateral",
    "INJIN": "inferior",
    "INJLA": "lateral",
    "INJIL": "inferolateral",
}
ISCHEMIA_TERRITORY = {
    "ISC_": "diffuse",
    "ISCAL": "anterolateral",
    "ISCIN": "inferior",
    "ISCIL": "inferolateral",
    "ISCAS": "anteroseptal",
    "ISCLA": "lateral",
    "ISCAN": "anterior",
    "NST_": "diffuse",
    "NDT": "lateral",
    "DIG": "lateral",
}


@dataclass
class Wave:
    """One Gaussian component of every beat: ``vector * exp(-(t - offset)^2 / 2 width^2)``."""

    name: str
    offset: float  # seconds after the R peak (negative: before)
    width: float  # seconds
    vector: np.ndarray
    atrial: bool = False
    rate_scaled: bool = False  # follows the QT interval, which lengthens with the RR interval


@dataclass
class Beat:
    """The waves of one record's beats and its rhythm parameters."""

    waves: list[Wave] = field(default_factory=list)
    heart_rate: float = 70.0
    irregular: bool = False  # atrial fibrillation: irregular RR, no P waves, f-waves
    amplitude: float = 1.0
    rr_modulation: float = 0.035  # respiratory sinus arrhythmia (relative RR amplitude)
    pvcs: int = 0  # premature ventricular complexes in the record
    strain: bool = False  # LVH with the strain pattern (lateral ST depression, T inversion)

    def get(self, name: str) -> Wave:
        return next(w for w in self.waves if w.name == name)


def _unit(v: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rotation(yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation in the frontal plane (about z) then the horizontal plane (about y)."""
    a, b = np.radians(yaw_deg), np.radians(roll_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return ry @ rz


def normal_beat(rng: np.random.Generator) -> Beat:
    """A healthy beat with this person's own axis, amplitudes and intervals."""
    rot = _rotation(rng.normal(0, 38), rng.normal(0, 12))
    amp = 0.95 * float(np.exp(rng.normal(0, 0.2)))
    v = lambda *xyz: rot @ np.asarray(xyz) * amp  # noqa: E731
    pr = rng.uniform(0.13, 0.19)
    qrs = rng.uniform(0.85, 1.15)
    waves = [
        Wave(
            "P",
            -pr,
            0.022 * rng.uniform(0.9, 1.2),
            v(0.09, 0.12, 0.03) * rng.uniform(0.7, 1.3),
            atrial=True,
        ),
        Wave("Q", -0.024 * qrs, 0.009 * qrs, v(-0.10, 0.02, 0.22)),
        Wave("R1", -0.008 * qrs, 0.010 * qrs, v(0.30, 0.30, 0.55)),
        Wave("R", 0.004 * qrs, 0.011 * qrs, v(0.52, 0.78, -0.30)),
        Wave("S", 0.030 * qrs, 0.011 * qrs, v(-0.22, -0.30, -0.70)),
        Wave(
            "T",
            0.30,
            0.048 * rng.uniform(0.9, 1.15),
            v(0.17, 0.20, 0.20) * rng.uniform(0.7, 1.3),
            rate_scaled=True,
        ),
    ]
    return Beat(waves, heart_rate=float(np.clip(rng.normal(69, 11), 48, 112)), amplitude=amp)


def apply_code(beat: Beat, code: str, severity: float, rng: np.random.Generator, acute: bool) -> None:
    """Change ``beat`` the way diagnostic ``code`` changes a real ECG."""
    s = severity * beat.amplitude
    w = beat.waves
    if code in MI_TERRITORY:
        d = _unit(TERRITORY[MI_TERRITORY[code]])
        injury_only = code.startswith("INJ")
        if not injury_only:
            w.append(Wave("MIq", -0.016, 0.014, -d * 0.50 * s))  # necrosis: forces point away
            w.append(Wave("MIr", 0.006, 0.012, -d * 0.35 * s))
        if acute or injury_only:
            w.append(Wave("STE", 0.11, 0.055, d * 0.20 * s))
        else:
            w.append(Wave("Tinv", 0.30, 0.05, -d * 0.28 * s, rate_scaled=True))
    elif code in ISCHEMIA_TERRITORY:
        d = _unit(TERRITORY[ISCHEMIA_TERRITORY[code]])
        if code == "NDT":
            beat.get("T").vector *= rng.uniform(0.0, 0.35)
            w.append(Wave("STD", 0.12, 0.05, -d * 0.04 * s))
        elif code == "NST_":
            w.append(Wave("STD", 0.12, 0.055, -d * 0.09 * s))
        elif code == "DIG":
            w.append(Wave("STD", 0.14, 0.07, -d * 0.14 * s))
            beat.get("T").offset *= 0.85
        else:
            w.append(Wave("STD", 0.12, 0.055, -d * 0.13 * s))
            w.append(Wave("Tinv", 0.30, 0.05, -d * 0.30 * s, rate_scaled=True))
    elif code == "LNGQT":
        beat.get("T").offset *= rng.uniform(1.25, 1.45)
    elif code == "ANEUR":
        w.append(Wave("STE", 0.13, 0.08, _unit(TERRITORY["anterior"]) * 0.2 * s))
    elif code == "EL":
        t = beat.get("T")
        t.vector *= 2.0
        t.width *= 0.65
    elif code in ("LVH", "SEHYP"):
        w.append(Wave("LVH", 0.006, 0.013, _unit((0.9, -0.05, -0.35)) * 1.5 * s))
        if code == "SEHYP":
            beat.get("Q").vector *= 2.5
        if beat.strain:  # strain pattern
            d = _unit(TERRITORY["lateral"])
            w.append(Wave("STD", 0.12, 0.06, -d * 0.08 * s))
            w.append(Wave("Tinv", 0.30, 0.05, -d * 0.25 * s, rate_scaled=True))
    elif code == "RVH":
        w.append(Wave("RVH", 0.012, 0.013, _unit((-0.6, 0.4, 0.7)) * 0.9 * s))
    elif code == "LAO/LAE":
        p = beat.get("P")
        p.width *= 1.4
        w.append(Wave("P2", p.offset + 0.045, 0.02, p.vector * 0.9, atrial=True))
    elif code == "RAO/RAE":
        p = beat.get("P")
        p.vector = p.vector + np.array([0.0, 0.16, 0.05]) * s
    elif code in ("CLBBB", "ILBBB", "IVCD"):
        widen = {"CLBBB": 2.1, "ILBBB": 1.45, "IVCD": 1.6}[code]
        for name in ("R1", "R", "S"):
            wave = beat.get(name)
            wave.width *= widen
            wave.offset *= widen
        if code != "IVCD":
            beat.get("Q").vector *= 0.0  # septal activation reversed: no septal q
            w.append(Wave("LBB", 0.03 * widen, 0.02 * widen, _unit((0.7, 0.1, -0.7)) * 0.6 * s))
        if code == "CLBBB":
            beat.get("T").vector *= -0.8  # secondary, discordant T
    elif code in ("CRBBB", "IRBBB"):
        full = code == "CRBBB"
        for name in ("R1", "R", "S"):
            beat.get(name).width *= 1.35 if full else 1.1
        w.append(
            Wave(
                "Rprime",
                0.06 if full else 0.045,
                0.018 if full else 0.013,
                _unit((-0.5, 0.05, 0.85)) * (0.75 if full else 0.4) * s,
            )
        )
    elif code in ("LAFB", "LPFB"):
        rot = _rotation(-45 if code == "LAFB" else 50, 0)
        for name in ("Q", "R1", "R", "S"):
            beat.get(name).vector = rot @ beat.get(name).vector
    elif code in ("1AVB", "2AVB", "3AVB"):
        p = beat.get("P")
        p.offset = -rng.uniform(0.23, 0.34)
    elif code == "WPW":
        beat.get("P").offset = -rng.uniform(0.09, 0.115)
        w.append(Wave("delta", -0.045, 0.022, beat.get("R").vector * 0.35))


def invert_t(beat: Beat, rng: np.random.Generator, global_inversion: bool) -> None:
    """Make the T waves of a record labelled INVT visibly inverted.

    Each territorial inversion (old MI, ischaemia, LVH strain) is deepened until the T wave is
    negative, by 60-100% of its normal size (0.1 mV at least), in the lead of
    :data:`T_UPRIGHT_LEADS` that faces the territory, so a mild finding is never labelled INVT
    with upright T waves. A record without one gets a global inversion (unless, like CLBBB's
    discordant T, it has one).
    """
    t = beat.get("T").vector
    leads = LEAD_VECTORS[list(T_UPRIGHT_LEADS)]
    territorial = [w for w in beat.waves if w.name == "Tinv"]
    for w in territorial:
        d = -w.vector / np.linalg.norm(w.vector)
        along = leads @ d
        k = int(np.argmax(along / np.linalg.norm(leads, axis=1)))
        if along[k] <= 0:
            continue
        depth = max(rng.uniform(0.6, 1.0) * abs(float(leads[k] @ t)), 0.1 * beat.amplitude)
        need = (float(leads[k] @ t) + depth) / along[k]
        if np.linalg.norm(w.vector) < need:
            w.vector = -d * need
    if not territorial and global_inversion:  # at least 0.15-0.3 mV, even after a flat T (NDT)
        size = max(float(np.linalg.norm(t)) * rng.uniform(0.6, 1.0), rng.uniform(0.15, 0.3) * beat.amplitude)
        beat.get("T").vector = -_unit(t) * size


def _ectopic_dipole(beat: Beat, times: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The dipole of premature ventricular complexes at ``times``: activation spreads from an
    ectopic focus through the muscle, so the QRS is wide, large and of an odd axis, and the T
    wave is discordant (opposite to the QRS); there is no P wave before it."""
    d = _unit(rng.normal(0, 1, 3)) * beat.amplitude * rng.uniform(1.0, 1.4)
    offsets = np.array([0.0, 0.055, 0.30])[:, None]
    widths = np.array([0.032, 0.028, 0.07])[:, None, None]
    vectors = np.stack([d, -0.45 * d, -0.35 * d], axis=1)  # (3, 3 waves)
    centres = times[None, :, None] + offsets[:, :, None]
    g = np.exp(-0.5 * ((t[None, None, :] - centres) / widths) ** 2).sum(axis=1)
    return vectors @ g


def qrs_amplitude(beat: Beat, leads: np.ndarray) -> float:
    """Largest peak-to-peak QRS amplitude (mV) of ``beat`` over ``leads`` (rows of lead vectors),
    evaluated on a fine grid around the R peak; used to draw low voltage to a target."""
    qrs = [w for w in beat.waves if not w.atrial and abs(w.offset) < 0.12 and w.width < 0.03]
    t = np.linspace(-0.12, 0.16, 141)
    g = np.exp(
        -0.5
        * (
            (t[None, :] - np.array([w.offset for w in qrs])[:, None])
            / np.array([w.width for w in qrs])[:, None]
        )
        ** 2
    )
    x = leads @ (np.stack([w.vector for w in qrs], axis=1) @ g)
    return float(np.ptp(x, axis=1).max())


def simulate(
    beat: Beat, fs: int, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, bool]]:
    """Render ``beat`` into a ``(12, n_samples)`` float32 signal in mV, with realistic noise.

    Returns the signal and flags saying which artefacts were added (for the metadata columns).
    """
    duration = n_samples / fs
    t = np.arange(n_samples) / fs
    rr_mean = 60.0 / beat.heart_rate
    n_beats = int(duration / rr_mean) + 3
    k = np.arange(n_beats)
    if beat.irregular:
        rr = rr_mean * np.exp(rng.normal(0, 0.18, n_beats))
    else:  # respiratory sinus arrhythmia plus jitter
        rr = rr_mean * (
            1
            + beat.rr_modulation * np.sin(2 * np.pi * k / rng.uniform(3.5, 5.5) + rng.uniform(0, 6.3))
            + rng.normal(0, 0.012, n_beats)
        )
    sinus = np.ones(n_beats)
    if beat.pvcs:  # premature beats (not the first two: they may fall before the record)
        ectopic = rng.choice(np.arange(3, n_beats - 3), size=min(beat.pvcs, n_beats - 6), replace=False)
        early = rr[ectopic] * rng.uniform(0.3, 0.45, len(ectopic))
        rr[ectopic] -= early
        rr[ectopic + 1] += early  # compensatory pause: the next sinus beat keeps its time
        sinus[ectopic] = 0.0
    beat_times = np.cumsum(rr) - rng.uniform(0.3, 1.0) * rr[0] - rr[0]
    waves = [w for w in beat.waves if not (beat.irregular and w.atrial)]
    offsets = np.array([w.offset for w in waves])[:, None] * np.where(
        np.array([w.rate_scaled for w in waves])[:, None], np.sqrt(rr / 0.857)[None, :], 1.0
    )
    widths = np.array([w.width for w in waves])[:, None, None]
    centres = beat_times[None, :, None] + offsets[:, :, None]
    beat_gain = ((1 + 0.04 * np.sin(2 * np.pi * k / 4.3)) * sinus)[None, :, None]  # breathing
    g = (np.exp(-0.5 * ((t[None, None, :] - centres) / widths) ** 2) * beat_gain).sum(axis=1)
    dipole = np.stack([w.vector for w in waves], axis=1) @ g  # (3, T)
    if beat.pvcs:
        dipole += _ectopic_dipole(beat, beat_times[sinus == 0], t, rng)
    lead_gain = np.exp(rng.normal(0, 0.08, 12))[:, None]  # electrode placement
    x = (LEAD_VECTORS @ dipole) * lead_gain

    flags = {"baseline_drift": False, "static_noise": False, "burst_noise": False}
    if beat.irregular:  # fibrillatory waves, 4-8 Hz, strongest in V1 and inferior leads
        f = rng.uniform(4, 8)
        fwave = 0.04 * np.sin(2 * np.pi * f * t + 0.6 * np.sin(2 * np.pi * 0.3 * t))
        x += np.outer(LEAD_VECTORS @ _unit((-0.2, 0.6, 0.7)), fwave)
    wander_amp = rng.uniform(0.02, 0.12) * (4.0 if rng.random() < 0.07 else 1.0)
    flags["baseline_drift"] = wander_amp > 0.2
    for _ in range(2):
        freq, phase = rng.uniform(0.05, 0.5), rng.uniform(0, 2 * np.pi)
        mix = rng.normal(0, 1, 12)[:, None]
        x += wander_amp / 2 * mix * np.sin(2 * np.pi * freq * t + phase)[None, :]
    noise_sd = rng.uniform(0.004, 0.018)
    flags["static_noise"] = noise_sd > 0.014
    x += rng.normal(0, noise_sd, x.shape)
    if rng.random() < 0.04:  # a burst of muscle noise
        flags["burst_noise"] = True
        start = rng.uniform(0, duration - 1.5)
        mask = ((t > start) & (t < start + rng.uniform(0.5, 1.5))).astype(np.float64)
        x += rng.normal(0, rng.uniform(0.03, 0.08), x.shape) * mask[None, :]
    return x.astype(np.float32), flags
