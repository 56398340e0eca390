"""Copy the example records under ``examples/records/`` from a real PTB-XL folder.

    python scripts/make_example_records.py /path/to/PTB-XL

The rule is fixed in advance, so nothing is picked by how a model scores it: for each
statement below, the first fold-10 record (by ``ecg_id``) validated by a human whose
statements include it at 100% likelihood, skipping a record already taken. Each record's 100 Hz
``.hea``/``.dat`` pair is copied as PTB-XL ships it, with comment lines added at the end of the
header (WFDB comments, as the PhysioNet/CinC Challenge records carry their diagnoses):
``# Labels: ...`` (PTB-XL superdiagnostic classes, as ecgcli's superdiagnostic task labels
them), ``# Statements: ...`` (every SCP statement with its likelihood) and the source.
``ecg predict`` prints the ``Labels`` line beside its own call.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ecgcli.data.ptbxl import load_ptbxl

STATEMENTS = ("NORM", "IMI", "AMI", "NDT", "ISC_", "LVH", "CLBBB", "CRBBB", "AFIB", "PVC")
OUT = Path(__file__).resolve().parent.parent / "examples" / "records"


def main(root: Path) -> None:
    import pandas as pd

    ds = load_ptbxl(root, 100, task="superdiagnostic")
    db = pd.read_csv(root / "ptbxl_database.csv").set_index("ecg_id")
    taken: list[int] = []
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for code in STATEMENTS:
        for i in range(len(ds.ecg_ids)):
            eid = int(ds.ecg_ids[i])
            if ds.folds[i] != 10 or eid in taken or not bool(db.loc[eid, "validated_by_human"]):
                continue
            if ds.scp_codes[i].get(code) == 100.0:
                break
        else:
            raise SystemExit(f"no fold-10 record with {code} at 100%")
        taken.append(eid)
        labels = [c for c, on in zip(ds.class_names, ds.labels[i], strict=True) if on] or ["none"]
        statements = ", ".join(f"{k}({v:g})" for k, v in ds.scp_codes[i].items())
        src = ds.record_paths[i]  # .../records100/00000/00009_lr (no suffix)
        name = f"ptbxl_{eid:05d}"
        for suffix in (".hea", ".dat"):
            shutil.copyfile(src.with_suffix(suffix), OUT / f"{name}{suffix}")
        hea = OUT / f"{name}.hea"
        lines = hea.read_text().splitlines()
        lines[0] = lines[0].replace(src.name, name, 1)
        lines = [ln.replace(f"{src.name}.dat", f"{name}.dat") for ln in lines]
        lines += [
            f"# Labels: {','.join(labels)}",
            f"# Statements: {statements}",
            f"# Source: PTB-XL 1.0.1 ecg_id {eid}, fold 10 (Wagner et al. 2020, PhysioNet, CC BY 4.0)",
        ]
        hea.write_text("\n".join(lines) + "\n")
        rows.append(f"| `{name}` | {code} | {','.join(labels)} | {statements} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
