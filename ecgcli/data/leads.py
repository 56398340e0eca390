"""Lead names: their spellings, the reduced-lead sets a model may be trained on, Holter names.

A model may use any subset of the 12 standard leads (``--leads``), always in PTB-XL order
(:data:`ecgcli.LEADS`) whatever order they were given in. The PhysioNet/Computing in Cardiology
Challenge 2021 ("Will two do?", Reyna et al. 2021) defined the reduced sets a user can name
by size: 12, 6 (the limb leads I, II, III, aVR, aVL, aVF), 4 (I, II, III, V2), 3 (I, II, V2)
and 2 (I, II).

Holter and monitoring recordings (MIT-BIH and the like) name their channels after *modified*
leads: ``MLII`` is a modified lead II (electrodes on the torso instead of the limbs), ``MV1``
a modified V1. They are close enough to be used for the lead they modify, but not the same
signal, so a record matched that way carries a warning (:func:`match_leads`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ecgcli import LEADS
from ecgcli.errors import ConfigError

#: Usual spellings of the 12 leads, normalised (upper case, no spaces, dashes or "LEAD").
ALIASES = {
    "DI": "I",
    "DII": "II",
    "DIII": "III",
    "LI": "I",
    "LII": "II",
    "LIII": "III",
    "1": "I",
    "2": "II",
    "3": "III",
}
#: Modified (Holter/monitoring) leads and the standard lead each stands in for.
HOLTER = {"MLI": "I", "MLII": "II", "MLIII": "III", **{f"MV{i}": f"V{i}" for i in range(1, 7)}}
#: The PhysioNet Challenge 2021 lead sets, by size.
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "12": LEADS,
    "6": ("I", "II", "III", "AVR", "AVL", "AVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_]|^LEAD", "", name.strip().upper())


def canonical_lead(name: str) -> str | None:
    """The standard lead name (one of :data:`ecgcli.LEADS`) for a header's signal name."""
    key = _key(name)
    if key in LEADS:
        return key
    return ALIASES.get(key)


def holter_lead(name: str) -> str | None:
    """The standard lead a modified (Holter) lead name stands in for, e.g. ``MLII`` -> ``II``."""
    return HOLTER.get(_key(name).replace("-", ""))


def parse_leads(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"6"``, ``"II"``, ``"I,II,V1"`` (or a list of names) -> the leads in PTB-XL order.

    Any spelling :func:`canonical_lead` knows is accepted (``avr``, ``Lead II``); an unknown
    name, a repeat or an empty list is a :class:`ConfigError` naming what is accepted.
    """
    if isinstance(spec, str):
        if spec.strip() in LEAD_SETS:
            return LEAD_SETS[spec.strip()]
        names = [s for s in (p.strip() for p in spec.split(",")) if s]
    else:
        names = [str(s).strip() for s in spec]
    if not names:
        raise ConfigError(
            f"--leads is empty (give a set size {', '.join(LEAD_SETS)} or names such as I,II,V1)"
        )
    found = [canonical_lead(n) for n in names]
    unknown = [n for n, lead in zip(names, found, strict=True) if lead is None]
    if unknown:
        hint = ""
        if any(holter_lead(n) for n in unknown):
            hint = " (modified Holter leads such as MLII are matched in records, not trained on: use II)"
        raise ConfigError(
            f"unknown lead(s) {', '.join(unknown)} in --leads{hint}; leads are {', '.join(LEADS)} "
            f"or a set size {', '.join(LEAD_SETS)}"
        )
    repeated = sorted({lead for lead in found if found.count(lead) > 1})
    if repeated:
        raise ConfigError(f"--leads names {', '.join(str(r) for r in repeated)} more than once")
    return tuple(lead for lead in LEADS if lead in found)


def lead_indices(leads: Sequence[str]) -> list[int]:
    """Rows of ``leads`` in a 12-lead array in PTB-XL order."""
    return [LEADS.index(lead) for lead in leads]


def describe(leads: Sequence[str]) -> str:
    """``"12 leads"`` / ``"6 leads (I, II, III, AVR, AVL, AVF)"`` for messages and run names."""
    return (
        "12 leads"
        if tuple(leads) == LEADS
        else f"{len(leads)} lead{'s' * (len(leads) > 1)} ({', '.join(leads)})"
    )
