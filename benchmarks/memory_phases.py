"""Peak resident memory of a training command, phase by phase, from outside the process.

    python benchmarks/memory_phases.py -- ecg train supervised --data-root data/PTB-XL \
        --encoder resnet1d_wang --recipe benchmark --label-fraction 1.0 --epochs 1 --run-dir /tmp/m

Runs the command as a child process with ``--live plain`` output left as it is (a pipe, so each
epoch is one line), samples the child's resident set (``VmRSS`` of ``/proc/PID/status``,
children included) every ``--interval`` seconds, and splits the run into phases at the lines it
prints:

- ``load``: from the start until the first line that counts the training records (tables read,
  cache opened, signals copied into memory, model built);
- ``train``: until the first ``epoch N/M`` line (the first epoch's steps, and the fold-9 scoring
  that ends it);
- ``evaluate``: until the process exits (the best epoch's fold-9/fold-10 scoring, calibration,
  bootstraps, the final writes).

For each phase it prints the peak resident memory and the wall time, and the process's own
high-water mark (``VmHWM``) at the end. Memory does not depend on the machine's load, so this is
a fair measurement on a shared machine; its times are not.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import threading
import time
from pathlib import Path

PHASES = (("load", re.compile(r"training records")), ("train", re.compile(r"^epoch \d+/\d+")))


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` plus its children's VmRSS, in MiB; zeros once it is gone."""
    total, hwm = 0.0, 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:") and p == pid:
                    hwm = int(line.split()[1]) / 1024
        except OSError:
            continue
    return total, hwm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to measure")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("give the command to measure after --")
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    phase = ["load"]
    peaks: dict[str, float] = {"load": 0.0, "train": 0.0, "evaluate": 0.0}
    ends: dict[str, float] = {}
    hwm = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            rss, high = rss_mib(proc.pid)
            peaks[phase[0]] = max(peaks[phase[0]], rss)
            hwm[0] = max(hwm[0], high)
            time.sleep(args.interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    order = [name for name, _ in PHASES]
    for line in proc.stdout:
        print(line, end="")
        i = order.index(phase[0]) if phase[0] in order else len(order)
        if i < len(PHASES) and PHASES[i][1].search(line.strip()):
            ends[phase[0]] = time.perf_counter() - t0
            phase[0] = order[i + 1] if i + 1 < len(order) else "evaluate"
    proc.wait()
    sampler.join()
    ends["evaluate"] = time.perf_counter() - t0
    print(f"\nexit {proc.returncode}; peak resident memory per phase (MiB, children included):")
    start = 0.0
    rows = []
    for name in ("load", "train", "evaluate"):
        end = ends.get(name, start)
        rows.append({"phase": name, "peak_rss_mib": round(peaks[name]), "seconds": round(end - start, 1)})
        print(f"  {name:9s} {peaks[name]:8.0f}   {end - start:7.1f} s")
        start = end
    print(f"  process high-water mark (VmHWM): {hwm[0]:.0f} MiB")
    if args.json:
        doc = {"command": command, "exit": proc.returncode, "phases": rows, "vmhwm_mib": round(hwm[0])}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
