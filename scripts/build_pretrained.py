"""Ship a finished run as a named model inside the package (maintainers only).

    python scripts/build_pretrained.py RUN_DIR NAME --summary "..." --command "ecg train ..." \
        --commit SHA --data-root PTB-XL [--default] [--against RUN_DIR_OR_NAME LABEL]

Copies the run's checkpoint into ``ecgcli/pretrained/NAME/``, exports its ONNX file, scores the
example records (``reference.json``), writes the model card from the run's own files and
records every file's sha256 in ``ecgcli/pretrained/manifest.json``. See
:mod:`ecgcli.experiments.shipping`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecgcli.experiments.recheck import shipped_fold10
from ecgcli.experiments.shipping import Provenance, build_shipped_model, population, run_fold10
from ecgcli.pretrained import zoo_dir

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name")
    ap.add_argument("--summary", required=True)
    ap.add_argument("--command", required=True, help="the exact command that trained the run")
    ap.add_argument("--commit", required=True, help="the ecgcli commit the run was trained at")
    ap.add_argument("--default", action="store_true", help="make it ecg predict's default model")
    ap.add_argument("--data-root", type=Path, required=True, help="the PTB-XL folder the run used")
    ap.add_argument(
        "--hardware", default="", help="where it trained [default: this CPU and the run's threads]"
    )
    ap.add_argument(
        "--against",
        nargs=2,
        metavar=("RUN_DIR_OR_NAME", "LABEL"),
        help="a finished run or a shipped model of the same task (e.g. the 12-lead twin) to compare "
        "with on fold 10, paired (a shipped model is scored on --data-root)",
    )
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache"), help="the signal cache folder")
    ap.add_argument("--zoo", type=Path, default=zoo_dir())
    ap.add_argument("--examples", type=Path, default=ROOT / "examples" / "records")
    args = ap.parse_args()
    against = None
    if args.against:
        source, label = args.against
        if Path(source).is_dir():
            against = (run_fold10(Path(source)), label)
        else:  # a shipped model, scored here as `ecg models --check` scores it
            against = (shipped_fold10(source, args.data_root, args.cache_dir), label)
    entry = build_shipped_model(
        args.run_dir,
        args.name,
        args.zoo,
        args.examples,
        Provenance(
            command=args.command,
            commit=args.commit,
            hardware=args.hardware,
            population=population(args.data_root),
        ),
        args.summary,
        default=args.default,
        against=against,
    )
    print(json.dumps({k: v for k, v in entry.items() if k != "files"}, indent=2))
    print(f"{sum(f['bytes'] for f in entry['files'].values()) / 1e6:.2f} MB in {args.zoo / args.name}")


if __name__ == "__main__":
    main()
