"""Each benchmark script still runs (tiny configuration); timings are never asserted here.  The
longer ones are marked ``long`` (CI runs them in its second stage)."""

import json
import os
import subprocess
import sys

import pytest

OFFSCREEN = {"QT_QPA_PLATFORM": "offscreen"}


def run_quick(root, args: list[str], out, timeout: int = 600, env: dict | None = None) -> dict:
    """Run a benchmark script from the repository root (``benchmarks/X.py`` or ``-m benchmarks.X``)
    with ``args``; it must succeed, and its JSON output ``out`` is returned."""
    r = subprocess.run([sys.executable, *args, "--out", str(out)], cwd=root, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_digits_world_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "b.json"
    res = run_quick(root, ["benchmarks/digits_world.py", "--quick"], out, timeout=300)
    for key in ("render_images_per_s", "prior_sampling_images_per_s", "prior_train_seconds_per_step",
                "teacher_images_per_s"):
        assert res[key] > 0


@pytest.mark.long
def test_perf_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "perf.json"
    res = run_quick(root, ["benchmarks/perf.py", "--quick"], out)
    assert res["guidance"]["cheap_over_unguided"] > 0 and res["guidance"]["exact_over_unguided"] > 0
    assert res["sampler_vs_pipeline"]["engine_over_pipeline"] > 0
    assert res["distill"]["images_per_s"]["engine"] > 0 and res["distill"]["images_per_s"]["bare"] > 0
    assert res["catalog"]["rows"] == 5000
    assert set(res["catalog"]["query_ms"]) >= {"sort_by_energy_ids", "prompt_text_filter_ids"}
    sd = res["sd_512"]  # on tiny random components with --quick
    assert set(sd["ratio_to_unguided"]) == {"unguided", "cheap, full VAE", "cheap, full VAE checkpointed",
                                            "cheap, tiny decoder"}
    assert sd["guidance_memory_per_image_mib"]["cheap, full VAE"] > 0 and sd["storing"]["images"] == 4
    assert len(sd["by_resolution"]) == 3


def test_perf_distill_bench_runs_quick_with_speed_options(root, tmp_path):
    out = tmp_path / "perf.json"
    res = run_quick(root, ["benchmarks/perf.py", "--quick", "--only", "distill"], out)["distill"]
    assert res["images_per_s"]["engine"] > 0 and res["images_per_s"]["bare"] > 0
    digits = res["speed_options"]["digits"]
    assert set(digits["images_per_s"]) == {"fp32", "bf16", "channels_last"}  # --quick: no compile, no ResNet
    assert all(v > 0 for v in digits["images_per_s"].values()) and digits["over_fp32"]["fp32"] == 1.0
    assert "resnet18_224" not in res["speed_options"]

@pytest.mark.long
def test_ablation_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "ablation.json"
    res = run_quick(root, ["benchmarks/ablation.py", "--quick", "--work", str(tmp_path / "w"), "--plot",
                           str(tmp_path / "a.png")], out)
    rows = set(res["summary"])
    assert rows >= {"real-data KD (upper bound)", "plain prompts", "DPE only", "EDA only", "PRISM",
                    "plain prompts + select", "PRISM + select", "Gaussian noise", "DeepInversion"}
    acc = res["summary"]["PRISM"]["6"]["accuracy_mean"]
    assert set(acc) >= {"clean", "rotate +15", "thicker strokes", "translate 1px", "blur", "noise"}
    assert "| PRISM |" in res["tables"]["6"]
    assert (tmp_path / "a.png").stat().st_size > 10_000


@pytest.mark.long
def test_app_perf_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "app.json"
    res = run_quick(root, ["benchmarks/app_perf.py", "--quick"], out,
                    env={**OFFSCREEN, "PRISM_STUDIO_HOME": str(tmp_path / "home")})
    assert res["startup"]["seconds_median"] > 0 and res["startup"]["torch_imported_before_shown"] is False
    assert res["event_loop"]["generation"]["state"] == "finished"
    assert res["event_loop"]["distillation"]["state"] == "finished"
    assert res["gallery"]["images"] == 5000 and res["gallery"]["scroll_pages"] > 1
    t = res["thousand_classes"]
    assert t["classes"] == 1000 and t["prompts"] == 4000 and len(t["prompts_class_filter_ms"]) == 4


@pytest.mark.long
def test_ablation_sweeps_run_quick(root, tmp_path):
    out = tmp_path / "sweeps.json"
    res = run_quick(root, ["benchmarks/ablation.py", "--sweeps", "--quick", "--budgets", "3", "--seeds", "0",
                           "--work", str(tmp_path / "w"), "--plot", str(tmp_path / "s.png")], out)
    assert [p["value"] for p in res["guidance_scale"]] == [0.0, 0.05]
    assert 0 <= res["guidance_scale"][0]["accuracy"] <= 1 and "recall" in res["prompts_per_class"][0]
    assert (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.long
def test_ablation_candidates_run_quick_and_resume(root, tmp_path):
    out = tmp_path / "candidates.json"
    cmd = [sys.executable, "benchmarks/ablation.py", "--candidates", "--quick", "--budgets", "3", "--seeds", "0",
           "--work", str(tmp_path / "w"), "--out", str(out)]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert list(res["candidates"]) == ["defaults", "scale 0.1"]
    for c in res["candidates"].values():
        assert {e["select"] for e in c["entries"]} == {False, True}
        assert 0 <= c["summary"]["select"]["accuracy_mean"] <= 1 and "recall" in c["summary"]["first"]
    assert "| scale 0.1 |" in res["table"]
    # a second run keeps the finished candidates instead of re-running them
    res["candidates"]["defaults"]["summary"]["first"]["accuracy_mean"] = 0.123
    out.write_text(json.dumps(res))
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(out.read_text())["candidates"]["defaults"]["summary"]["first"]["accuracy_mean"] == 0.123
    assert "seed 0" not in r.stdout


@pytest.mark.long
def test_memory_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "memory.json"
    res = run_quick(root, ["benchmarks/memory.py", "--quick"], out, env={"HF_HUB_OFFLINE": "1"})
    assert {(s["stage"], s["images"]) for s in res["stages"]} == \
        {(st, n) for st in ("distill", "evaluate", "metrics") for n in (12, 24, 48)}
    assert all(s["peak_mb"] >= s["base_mb"] > 0 for s in res["stages"])
    assert [(p["real"], p["fake"]) for p in res["prdc"]] == [(200, 400), (400, 800)]


@pytest.mark.long
def test_guidance_memory_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "g.json"
    rows = run_quick(root, ["benchmarks/guidance_memory.py", "--quick"], out, env={"HF_HUB_OFFLINE": "1"})["rows"]
    assert [x["setting"] for x in rows] == ["whole batch", "micro-batch 1", "micro-batch 1 + checkpointed decoder"]
    assert all(x["peak_mb"] >= x["base_mb"] > 0 for x in rows)


def test_scale_out_counts_sd15_operations_and_projects_per_gpu(root):
    """The operation count behind the projection in docs/SCALE_OUT.md (real SD 1.5 architectures on
    the meta device; the 1 vs 2 process timings are the script's full run)."""
    sys.path.insert(0, str(root))
    from benchmarks.scale_out import GPUS, projection, sd15_flops

    f = sd15_flops(steps=30, window=(0.5, 1.0))
    assert f["guided_steps"] == 15
    assert f["per_image"] == 30 * f["unet_step_with_cfg"] + 15 * f["guidance_step_tiny_decoder_resnet50"] + \
        f["vae_decode"] + f["score_resnet50"]
    assert 1.4e12 < f["unet_step_with_cfg"] < 1.8e12  # SD 1.5's UNet: ~0.8 TFLOP per 64x64 latent
    p = projection(f)
    assert set(p) == set(GPUS)
    h100, a100 = p["NVIDIA H100 SXM"]["40% of peak"], p["NVIDIA A100 SXM"]["40% of peak"]
    assert h100 == round(3600 * GPUS["NVIDIA H100 SXM"] * 0.4 / f["per_image"]) and h100 > a100


@pytest.mark.long
def test_curation_scale_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "cs.json"
    res = run_quick(root, ["benchmarks/curation_scale.py", "--quick"], out,
                    env={**OFFSCREEN, "PRISM_STUDIO_HOME": str(tmp_path / "home")})
    f, a, v = res["features"], res["analysis"], res["view"]
    assert f["cached_computed"] == 0 and f["after_adding_computed"] == f["added"]
    assert a["synthetic"] == 2000 and a["regions"] >= 0 and "umap_map_seconds" not in a
    assert v["points"] == 3000 and v["gallery_rows"] == v["lasso_selected"] > 0 and v["frame_ms"]["frames"] == 24


@pytest.mark.long
def test_map_curation_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "mc.json"
    res = run_quick(root, ["-m", "benchmarks.map_curation", "--quick", "--seeds", "0", "--work", str(tmp_path / "w")],
                    out, timeout=900)
    rec = res["seeds"]["0"]
    assert set(rec["arms"]) == {"PRISM", "+50% more, lowest", "+50% where the holes are, lowest", "dedup + lowest"}
    assert rec["holes"]["coverage_after_fill"] >= rec["holes"]["coverage_before"]
    assert "| PRISM |" in subprocess.run([sys.executable, "-m", "benchmarks.map_curation", "--markdown", "--out",
                                          str(out)], cwd=root, capture_output=True, text=True).stdout


@pytest.mark.long
def test_guidance_schedulers_benchmark_runs_quick(root, tmp_path):
    out = tmp_path / "g.json"
    res = run_quick(root, ["-m", "benchmarks.guidance_schedulers", "--quick"], out, env={"HF_HUB_OFFLINE": "1"})
    want = {(s, c) for s in ("ddim", "pndm") for c in (0.05, 0.15)}
    assert {(r["scheduler"], r["scale"]) for r in res["rows"]} == want
    assert all(r["guided_energy"] != r["plain_energy"] for r in res["rows"]) and len(res["demo_setting"]) == 4
