"""Each benchmark script still runs (tiny configuration); timings are never asserted here."""

import json
import subprocess
import sys


def test_digits_world_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "benchmarks/digits_world.py", "--quick", "--out", str(out)], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    for key in ("render_images_per_s", "prior_sampling_images_per_s", "prior_train_seconds_per_step",
                "teacher_images_per_s"):
        assert res[key] > 0
