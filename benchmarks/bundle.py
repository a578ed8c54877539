"""The desktop bundle (issue 12): build time and size (from ``packaging/build.sh``'s
``dist/build.json``), and the start-up time of the frozen app against the installed one.

Start-up: seconds from launching the program to its main window's first paint, offscreen, on a
fresh project and a fresh user folder (``--startup-time``: the app prints ``SHOWN <seconds>``
from the launch time the benchmark passes it); median of 5 launches each, alternating.

    bash packaging/build.sh && QT_QPA_PLATFORM=offscreen python benchmarks/bundle.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "PRISM Studio"


def launch(cmd: list[str]) -> float:
    home = tempfile.mkdtemp(prefix="prism-home-")
    project = Path(tempfile.mkdtemp(prefix="prism-proj-")) / "p"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PRISM_STUDIO_HOME": home}
    t0 = time.time()
    r = subprocess.run([*cmd, "--project", str(project), "--startup-time", repr(t0)], capture_output=True, text=True,
                       env=env, timeout=300, cwd=ROOT)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("SHOWN")), None)
    if line is None:
        raise RuntimeError(f"{cmd[0]} did not show its window: {r.stderr[-2000:]}")
    return float(line.split()[1])


def main(argv=None) -> int:
    import argparse

    sys.path.insert(0, str(ROOT))
    from benchmarks.perf import load_average, machine

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bundle.json")
    a = p.parse_args(argv)
    exe = BUNDLE / "prism-studio"
    if not exe.exists():
        raise SystemExit(f"no bundle at {BUNDLE}: run bash packaging/build.sh first")
    runs = {"installed": [], "frozen": []}
    launch([sys.executable, "-m", "prism_gui"])  # warm the file cache of both once, untimed
    launch([str(exe)])
    for _ in range(a.repeat):
        runs["installed"].append(launch([sys.executable, "-m", "prism_gui"]))
        runs["frozen"].append(launch([str(exe)]))
    build = json.loads((ROOT / "dist" / "build.json").read_text()) if (ROOT / "dist" / "build.json").exists() else {}
    res = {"command": "bash packaging/build.sh && QT_QPA_PLATFORM=offscreen python benchmarks/bundle.py",
           "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_before": load_average(),
           "build": build, "bundle_gib": round(build.get("bundle_bytes", 0) / 2**30, 2),
           "startup_seconds": {k: {"median": round(statistics.median(v), 3), "all": [round(x, 3) for x in v]}
                               for k, v in runs.items()}}
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
