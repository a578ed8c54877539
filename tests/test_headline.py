"""The headline benchmark is `prism demo`: one path (issue 14)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from benchmarks.headline import add_components, gap_share, has_components, interval, seed_spec, summarize


def test_interval_is_the_t_interval_of_the_mean_and_of_one_more_seed():
    v = [0.6, 0.7, 0.8, 0.75, 0.65]
    r = interval(v)
    s = np.std(v, ddof=1)
    t = stats.t.ppf(0.975, 4)
    assert r["mean"] == pytest.approx(0.7) and r["std"] == pytest.approx(s)
    assert r["ci95"] == pytest.approx([0.7 - t * s / np.sqrt(5), 0.7 + t * s / np.sqrt(5)])
    assert r["prediction95"] == pytest.approx([0.7 - t * s * np.sqrt(1.2), 0.7 + t * s * np.sqrt(1.2)])
    assert r["prediction95"][0] < r["ci95"][0] and "ci95" not in interval([0.5])


def test_summary_gap_share_per_row_uses_each_seeds_own_baselines():
    recs = [{"seed": s, "gap_share": gap_share(p, pl, r),
             "rows": {"real-data KD (upper bound)": {"accuracy": r}, "plain prompts": {"accuracy": pl},
                      "PRISM": {"accuracy": p}}}
            for s, (r, pl, p) in enumerate([(0.99, 0.80, 0.95), (0.98, 0.70, 0.91)])]
    out = summarize(recs)
    assert out["gap_share"]["mean"] == pytest.approx(np.mean([0.15 / 0.19, 0.21 / 0.28]))
    assert out["rows"]["plain prompts"]["gap_share"]["mean"] == 0
    assert out["rows"]["real-data KD (upper bound)"]["gap_share"]["mean"] == pytest.approx(1)


def test_component_rows_are_added_only_to_a_seed_recorded_with_the_same_spec_and_kept_prompts(tmp_path):
    import dataclasses

    spec, project = seed_spec(7, tmp_path, quick=True, budget=None)
    rec = {"seed": 7, "spec": json.loads(json.dumps(dataclasses.asdict(spec))),
           "rows": {"PRISM": {"accuracy": 0.9}}}
    assert not has_components(rec)
    with pytest.raises(SystemExit, match=r"its project .* is gone: delete its record"):
        add_components(rec, tmp_path, quick=True, ctx=None, sets=None)
    project.mkdir(parents=True)
    (project / "prompts.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"another spec than this command's \(guidance_scale\)"):
        add_components({**rec, "spec": {**rec["spec"], "guidance_scale": 9.0}}, tmp_path, quick=True, ctx=None,
                       sets=None)
    assert has_components({"rows": {"DPE only": {}}})


@pytest.mark.long
def test_the_headline_benchmark_gives_what_prism_demo_gives(root, tmp_path):
    env_run = dict(cwd=root, capture_output=True, text=True, timeout=900)
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", "demo", "--quick", "--seed", "2", "--json",
                        str(tmp_path / "demo.json"), "--project", str(tmp_path / "demo")], **env_run)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "share of the gap" in r.stdout
    demo = json.loads((tmp_path / "demo.json").read_text())
    r = subprocess.run([sys.executable, "-m", "benchmarks.headline", "--quick", "--seeds", "2", "--work",
                        str(tmp_path / "h"), "--out", str(tmp_path / "h.json")], **env_run)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / "h.json").read_text())["headline"]["records"][0]
    for name, m in demo["methods"].items():
        assert rec["rows"][name]["accuracy"] == m["student_accuracy"], name
    assert rec["gap_share"] == pytest.approx(demo["gap_share"])
    assert rec["seeds"] == demo["seeds"] == {"plain generation": 2, "prompt expansion and scoring": 2,
                                             "PRISM generation": 3, "student initialisation and batches": 2}
