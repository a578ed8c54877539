"""Kill anywhere (issue 13): SIGKILL a job at a random moment, run it again, count what was lost.

    python -m benchmarks.kill_anywhere --trials 20 --json benchmarks/results/kill_anywhere.json

Eight jobs, each run as a user runs it, in its own process:

- ``generate``: ``prism generate`` of 60 Digits images (batches of 10, 4 steps);
- ``distill``: ``prism distill`` of a student on those images (3 epochs, a checkpoint every 3 steps,
  an evaluation each epoch);
- ``curate``: a curator's session, the calls the Curate panel makes (reject a selection, keep,
  reject beyond an energy, keep the lowest per class, undo), 1,500 changes;
- ``score``: ``prism prompts`` with pilot scoring, over an existing prompt file;
- ``report``: ``prism report`` over an existing report;
- ``import``: ``prism import`` of 300 images made elsewhere (class folders of the teacher's class
  names, PNGs without metadata) into a project as a new run;
- ``export``: ``prism export`` of the project's 60 images as a Hugging Face imagefolder dataset
  (the export is written image by image, then its metadata and card);
- ``map``: ``prism map`` (PCA) of the project: teacher features into the feature cache, the map, its
  JSON and PNG.

A clean run of each gives the reference.  Each trial copies the project, starts the job and kills
it with SIGKILL at a random point of its work: when its progress bar reaches a fraction drawn
uniformly from [0, 1] of its total, plus a random delay (up to 0.3 s within the work, up to 2 s
after its last step, while it writes its results and exits); the job's progress, not a clock,
places the kill, so the kills spread over the work whatever the load.  Import, export and map take
a few seconds of work here, too short for their progress bars: they are killed at a time drawn
uniformly over their clean run's whole duration, start-up included.  Then it runs the job again
to the end (the curator makes 10 more changes) and compares:

- ``lost``: images, rows, metric lines or acknowledged curation changes the reference has and the
  trial does not; for distillation, final weights that differ from the uninterrupted run's;
- ``duplicates``: rows, metric steps or items stored twice;
- ``orphans``: image files without a row, rows without a file, ``*.tmp`` files left;
- ``corrupt``: a catalog failing SQLite's check, an image that does not decode, an output file
  (prompts, report) that does not load or is neither the old nor the new one.

Every figure must be 0.  ``tests/reliability/test_kill_anywhere.py`` runs one trial of each job.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

JOBS = ("generate", "distill", "curate", "score", "report", "import", "export", "map")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
CURATE_CHANGES = 1500


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "prism_gui.cli", *map(str, args)]


# the job's first progress output (its tqdm bar, or the curator's "ready"): its work has begun
READY = {"generate": b"generate", "distill": b"distill:", "curate": b"ready", "score": b"pilot scoring",
         "report": b"report:", "import": b"import", "export": b"export",
         "map": b"features"}


PROGRESS = re.compile(rb"\| *(\d+)/(\d+) \[")  # tqdm's counter: "...| 12/34 [00:03<..." (not "epoch 1/3")


def _watch(cmd, marker: bytes):
    """Start ``cmd``; returns (process, event set when ``marker`` appears on its output, start time,
    the output's tail, the latest (done, total) its progress showed after the marker)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    ready = threading.Event()
    tail = bytearray()
    progress = [None]

    def read():
        seen = bytearray()  # the output after the marker
        for chunk in iter(lambda: p.stdout.read1(4096), b""):
            tail.extend(chunk)
            del tail[:-20000]
            if ready.is_set():
                seen.extend(chunk)
                del seen[:-2000]
                found = PROGRESS.findall(bytes(seen))
                if found:
                    progress[0] = (int(found[-1][0]), int(found[-1][1]))
            elif marker in tail:
                ready.set()
                seen.extend(tail[tail.rindex(marker):])
        ready.set()  # ended without the marker: nothing to wait for

    threading.Thread(target=read, daemon=True).start()
    return p, ready, t0, tail, progress


def _run(cmd, timeout=900, marker: bytes = b"\0") -> tuple[float, float]:
    """Run ``cmd`` to the end; (seconds until ``marker`` appeared, seconds in all)."""
    p, ready, t0, tail, _ = _watch(cmd, marker)
    ready.wait(timeout)
    t_ready = time.perf_counter() - t0
    rc = p.wait(timeout)
    if rc != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{bytes(tail)[-3000:].decode(errors='replace')}")
    return t_ready, time.perf_counter() - t0


def _kill_at(cmd, marker: bytes, rng: random.Random) -> dict:
    """Start ``cmd``; SIGKILL it at a random point of its work: once its progress (the job's own
    bar, after ``marker``) reaches a fraction drawn uniformly from [0, 1] of its total, after a
    further random delay (up to 0.3 s within the work, up to 2 s once the last step is done, when
    the job writes its results and exits).  Driven by the job's progress, not by a clock, so the
    kills spread over the work whatever the machine's load."""
    p, _, t0, _, progress = _watch(cmd, marker)
    u = rng.random()
    fraction = None
    while p.poll() is None:
        if progress[0] is not None and progress[0][1] > 0:
            done, total = progress[0]
            if done >= max(1, round(u * total)) or done == total:
                fraction = done / total
                break
        time.sleep(0.01)
    delay = rng.uniform(0, 2.0 if fraction == 1.0 else 0.3)
    return _kill_after(p, delay, t0, None if fraction is None else round(fraction, 3))


def _kill_after(p, delay: float, t0: float, fraction: float | None) -> dict:
    """SIGKILL ``p`` after ``delay`` seconds unless it ends first; the trial's record."""
    try:
        p.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed = True
    return {"killed": killed, "at_fraction": fraction, "extra_delay_s": round(delay, 2),
            "seconds": round(time.perf_counter() - t0, 2)}


def _kill_timed(cmd, marker: bytes, rng: random.Random, seconds: tuple[float, float]) -> dict:
    """For jobs whose work takes a few seconds (import, export, map), whose progress bar may show
    only its end: SIGKILL ``cmd`` at a time drawn uniformly over the clean run's whole duration
    (``seconds``: the clean run's (until ``marker``, in all)), start-up included."""
    p, _, t0, _, _ = _watch(cmd, marker)
    delay = rng.uniform(0, seconds[1])
    return _kill_after(p, delay, t0, round(delay / max(1e-9, seconds[1]), 3))


# ----------------------------------------------------------------------------- the jobs' files
class Bench:
    """A base project (prompts, a 60-image generation) and the specs of the five jobs."""

    def __init__(self, work: Path):
        self.work = work
        self.base = work / "base"
        self.prompts = work / "prompts.json"
        self.exported = work / "ref-export"  # the reference export
        self.to_import = work / "import-src"  # 300 images made elsewhere, in class folders

    def gen_spec(self, project: Path) -> Path:
        spec = project / "generate.json"
        spec.write_text(json.dumps({"project": str(project), "run": "gen", "images_per_class": 6, "batch_size": 10,
                                    "prompts": str(self.prompts), "sampler": {"steps": 4}}))
        return spec

    def distill_spec(self, project: Path) -> Path:
        spec = project / "distill.json"
        spec.write_text(json.dumps({"project": str(project), "run": "dist", "data": "catalog", "epochs": 3,
                                    "batch_size": 16, "checkpoint_every": 3, "export_onnx": False,
                                    "out_dir": str(project / "runs" / "dist")}))
        return spec

    def score_spec(self, project: Path) -> Path:
        spec = project / "score.json"
        spec.write_text(json.dumps({"teacher": "digits", "per_class": 4, "seed": 1, "output": str(project / "p.json"),
                                    "score": {"steps": 4, "batch": 8}}))
        return spec

    def build(self) -> dict:
        """The base project and the reference (clean) run of each job, with its duration."""
        from prism_gui.engine.project.project import Project

        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "p.toml").write_text(f'bank = "digits"\nper_class = 3\noutput = "{self.prompts}"\n')
        _run(_cli("prompts", self.work / "p.toml"))
        Project.create(self.base)
        ref: dict = {"seconds": {}}
        gen = self.work / "ref-generate"
        Project.create(gen)
        ref["seconds"]["generate"] = _run(_cli("generate", self.gen_spec(gen)), marker=READY["generate"])
        shutil.copytree(gen, self.base, dirs_exist_ok=True)  # the base: a project with its images
        ref["generate"] = _images(gen)
        ref["seconds"]["distill"] = _run(_cli("distill", self.distill_spec(self._copy("ref-distill"))),
                                         marker=READY["distill"])
        ref["distill"] = _distill_outcome(self.work / "ref-distill")
        d = self._copy("ref-curate")
        ref["seconds"]["curate"] = _run(_curate_cmd(d, CURATE_CHANGES, seed=0), marker=READY["curate"])
        d = self._copy("ref-score")
        (d / "p.json").write_text(self.prompts.read_text())  # the file scoring replaces
        ref["seconds"]["score"] = _run(_cli("prompts", self.score_spec(d)), marker=READY["score"])
        ref["score"] = (d / "p.json").read_bytes()
        d = self.work / "ref-distill"  # a project with a distillation: the report has curves
        (d / "report.html").write_text("<html><body>the previous report</body></html>")
        ref["seconds"]["report"] = _run(_cli("report", d, "--out", d / "report.html"), marker=READY["report"])
        ref["seconds"]["export"] = _run(_cli("export", gen, self.exported), marker=READY["export"])
        ref["export"] = _tree(self.exported, gen.name)
        _made_elsewhere(self.to_import, 300)
        d = self._copy("ref-import")
        ref["seconds"]["import"] = _run(_cli("import", d, self.to_import, "--run", "imp"), marker=READY["import"])
        ref["import"] = _imported(d)
        d = self._copy("ref-map")
        ref["seconds"]["map"] = _run(_map_cmd(d), marker=READY["map"])
        ref["map"] = _map_points(d)
        return ref

    def _copy(self, name: str) -> Path:
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(self.base, d)
        return d


# ----------------------------------------------------------------------------- checks
def _images(project: Path) -> dict[int, np.ndarray]:
    from PIL import Image

    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project) as cat:
        rows = cat.query(run="gen")
    out = {}
    for r in rows:
        with Image.open(project / r["path"]) as im:
            out[r["item"]] = np.asarray(im).copy()
    return out


def _common(project: Path) -> dict:
    """Catalog check, rows vs files, undecodable images, leftover temporary files."""
    from PIL import Image

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.recover import check_catalog

    f = {"lost": 0, "duplicates": 0, "orphans": 0, "corrupt": 0}
    problem = check_catalog(project)
    if problem:
        f["corrupt"] += 1
        f["problem"] = problem
        return f
    with Catalog(project) as cat:
        rows = cat.query()
    keys = [(r["run"], r["item"]) for r in rows]
    f["duplicates"] += len(keys) - len(set(keys))
    paths = {r["path"] for r in rows}
    files = {p.relative_to(project).as_posix() for p in (project / "images").rglob("*.png")} \
        if (project / "images").exists() else set()
    f["orphans"] += len(files ^ paths)
    f["orphans"] += len([p for p in project.rglob("*.tmp")])
    for p in sorted(files & paths):
        try:
            with Image.open(project / p) as im:
                im.load()
        except Exception:
            f["corrupt"] += 1
    return f


def _made_elsewhere(folder: Path, n: int) -> None:
    """``n`` distinct 8x8 grey PNGs without PRISM metadata, in folders named by the digit classes."""
    from PIL import Image

    from prism_gui.engine.teachers.load import load_teacher

    names = load_teacher("digits").class_names
    rng = np.random.default_rng(0)
    for i in range(n):
        (folder / names[i % 10]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(folder / names[i % 10] / f"{i}.png")


def _tree(folder: Path, project: str = "") -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes (the exporting project's folder
    name, which the dataset card's title carries, written as ``<project>``)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes().replace(project.encode(), b"<project>") if project
            else p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _map_cmd(project: Path) -> list[str]:
    return _cli("map", project, "--method", "pca", "--reference", "none", "--teacher", "digits")


def _map_points(project: Path) -> dict | None:
    """The map's points by image id, or None when its JSON or PNG is missing or does not load."""
    from PIL import Image

    try:
        doc = json.loads((project / "analysis" / "map.json").read_text())
        with Image.open(project / "analysis" / "map.png") as im:
            im.load()
    except (OSError, ValueError):
        return None
    return {p["id"]: (round(p["x"], 5), round(p["y"], 5)) for p in doc["points"]}


def _imported(project: Path) -> list[str]:
    """The SHA-256 of each original file the run ``imp`` holds, one entry per row."""
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project) as cat:
        return sorted(json.loads(r["settings"])["import"]["sha256"] for r in cat.query(run="imp"))


def _distill_outcome(project: Path) -> dict:
    import safetensors.torch

    from prism_gui.engine.data.catalog import Catalog

    out = project / "runs" / "dist"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    with Catalog(project) as cat:
        steps, loss = cat.metrics("dist", "loss")
        _, acc = cat.metrics("dist", "test_accuracy")
    return {"weights": safetensors.torch.load_file(str(out / "student" / "model.safetensors")),
            "lines": [(r["step"], r.get("loss"), r.get("test_accuracy")) for r in lines],
            "catalog": (steps.tolist(), loss.tolist(), acc.tolist())}


def _curate_cmd(project: Path, n: int, seed: int, ack: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "benchmarks.kill_anywhere", "--curator", str(project), str(n), str(seed),
            str(ack or project / "acks.txt")]


def curator(project: Path, n: int, seed: int, ack: Path) -> None:
    """A curator's session: ``n`` changes through the Catalog calls the Curate panel makes; each
    change that returns is acknowledged by a line in ``ack`` (flushed)."""
    from prism_gui.engine.analysis.selection import select_in_catalog
    from prism_gui.engine.data.catalog import Catalog

    rng = random.Random(seed)
    with Catalog(project) as cat, open(ack, "a") as a:
        ids = cat.ids()
        energies = sorted(float(e) for e in cat.column("energy") if e is not None)
        print("ready", flush=True)
        done = 0
        while done < n:
            op = rng.random()
            if op < 0.45:
                r = cat.set_status(rng.sample(ids, rng.randint(1, 8)), "reject", label="selection")
            elif op < 0.6:
                r = cat.set_status(rng.sample(ids, rng.randint(1, 8)), "keep", label="selection")
            elif op < 0.7:
                r = cat.reject_beyond(rng.choice(energies), column="energy")
            elif op < 0.75:
                r = select_in_catalog(cat, rng.randint(2, 6), strategy="lowest")
            else:
                r = cat.undo()
            if r is not None:
                a.write(f"{r}\n")
                a.flush()
                os.fsync(a.fileno())
            done += 1
            if done % 10 == 0:
                print(f"curate | {done}/{n} [", flush=True)


def _curation_ops(project: Path) -> int:
    import sqlite3

    con = sqlite3.connect(project / "catalog.sqlite")
    try:
        made = con.execute("SELECT COUNT(DISTINCT action) FROM curation_log").fetchone()[0]
        undone = con.execute("SELECT COUNT(DISTINCT action) FROM curation_log WHERE undone=1").fetchone()[0]
    finally:
        con.close()
    return made + undone


def _statuses(project: Path) -> dict:
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project) as cat:
        return {(r["run"], r["item"]): r["status"] for r in cat.query()}


# ----------------------------------------------------------------------------- one trial
def trial(bench: Bench, ref: dict, job: str, rng: random.Random, index: int) -> dict:
    d = bench._copy(f"trial-{job}-{index}")
    rec = {"job": job, "trial": index}
    if job == "generate":
        shutil.rmtree(d / "images", ignore_errors=True)  # an empty project: generation starts from nothing
        for f in d.glob("catalog.sqlite*"):
            f.unlink()
        spec = bench.gen_spec(d)
        rec.update(_kill_at(_cli("generate", spec), READY["generate"], rng))
        rec["progress"] = _progress_images(d)
        _run(_cli("generate", spec))
        f = _common(d)
        got = _images(d)
        want = ref["generate"]
        f["lost"] += len(set(want) - set(got))
        f["corrupt"] += sum(1 for k in set(want) & set(got) if not np.array_equal(want[k], got[k]))
    elif job == "distill":
        spec = bench.distill_spec(d)
        rec.update(_kill_at(_cli("distill", spec), READY["distill"], rng))
        ck = d / "runs" / "dist" / "checkpoint" / "trainer_state.pt"
        rec["progress"] = _checkpoint_step(ck)
        _run(_cli("distill", spec))
        f = _common(d)
        got, want = _distill_outcome(d), ref["distill"]
        f["lost"] += int(any(not bool((got["weights"][k] == v).all()) for k, v in want["weights"].items()))
        steps = [s for s, loss, _ in got["lines"] if loss is not None]
        f["duplicates"] += len(steps) - len(set(steps)) + len(got["catalog"][0]) - len(set(got["catalog"][0]))
        f["lost"] += len(set(want["lines"]) - set(got["lines"]))
        f["lost"] += int(got["catalog"] != want["catalog"])
    elif job == "curate":
        ack = d / "acks.txt"
        rec.update(_kill_at(_curate_cmd(d, CURATE_CHANGES, seed=index + 1, ack=ack), READY["curate"], rng))
        acked = len(ack.read_text().split()) if ack.exists() else 0
        rec["progress"] = acked
        f = _common(d)
        if not f["corrupt"]:
            ops = _curation_ops(d)
            journal = (d / "curation.jsonl")
            lines = [x for x in journal.read_text().splitlines() if _parses(x)] if journal.exists() else []
            f["lost"] += max(0, acked - ops)  # an acknowledged change the catalog lacks
            f["duplicates"] += max(0, ops - acked - 1)  # beyond the one in flight
            f["lost"] += int(not ops <= len(lines) <= ops + 1)  # the journal holds what the catalog holds
            # the catalog rebuilt from the images and the journal (cut to the committed changes) equals it
            copy = bench.work / f"rebuilt-{index}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(d, copy)
            (copy / "curation.jsonl").write_text("".join(x + "\n" for x in lines[:ops]))
            from prism_gui.engine.data.recover import rebuild_catalog

            rebuild_catalog(copy)
            live, rebuilt = _statuses(d), _statuses(copy)
            f["lost"] += sum(1 for k in live if live[k] != rebuilt.get(k))
            shutil.rmtree(copy, ignore_errors=True)
            _run(_curate_cmd(d, 10, seed=1000 + index, ack=ack))  # the catalog takes changes again
            f2 = _common(d)
            f["corrupt"] += f2["corrupt"]
    elif job == "score":
        old = bench.prompts.read_bytes()
        (d / "p.json").write_bytes(old)
        spec = bench.score_spec(d)
        rec.update(_kill_at(_cli("prompts", spec), READY["score"], rng))
        now = (d / "p.json").read_bytes() if (d / "p.json").exists() else b""
        rec["progress"] = "new" if now == ref["score"] else "old" if now == old else "other"
        f = {"lost": int(rec["progress"] == "other" and now == b""), "duplicates": 0, "orphans": 0,
             "corrupt": int(rec["progress"] == "other")}
        _run(_cli("prompts", spec))
        f["corrupt"] += int((d / "p.json").read_bytes() != ref["score"])
        f["orphans"] += len(list(d.glob(".*.tmp")))
    elif job == "import":
        cmd = _cli("import", d, bench.to_import, "--run", "imp")
        rec.update(_kill_timed(cmd, READY["import"], rng, ref["seconds"]["import"]))
        rec["progress"] = len(_imported(d)) if (d / "catalog.sqlite").exists() else 0
        _run(cmd)
        f = _common(d)
        got, want = _imported(d), ref["import"]
        f["lost"] += len(set(want) - set(got))
        f["duplicates"] += len(got) - len(set(got))
    elif job == "export":
        dest = bench.work / f"export-{index}"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = _cli("export", d, dest)
        rec.update(_kill_timed(cmd, READY["export"], rng, ref["seconds"]["export"]))
        rec["progress"] = len(list(dest.rglob("*.png"))) if dest.exists() else 0
        _run(cmd)
        f = _common(d)
        got, want = _tree(dest, d.name), ref["export"]
        f["lost"] += len(set(want) - set(got))
        f["orphans"] += len(set(got) - set(want))  # a temporary or stray file left in the export
        f["corrupt"] += sum(got[k] != want[k] for k in set(want) & set(got))
        shutil.rmtree(dest, ignore_errors=True)
    elif job == "map":
        rec.update(_kill_timed(_map_cmd(d), READY["map"], rng, ref["seconds"]["map"]))
        rec["progress"] = "map" if _map_points(d) is not None else "none"
        _run(_map_cmd(d))
        f = _common(d)
        got = _map_points(d)
        f["corrupt"] += int(got is None or got != ref["map"])
    else:  # report
        src = bench.work / "ref-distill"
        shutil.rmtree(d)
        shutil.copytree(src, d)
        old = "<html><body>the previous report</body></html>"
        (d / "report.html").write_text(old)
        rec.update(_kill_at(_cli("report", d, "--out", d / "report.html"), READY["report"], rng))
        text = (d / "report.html").read_text(errors="replace")
        rec["progress"] = "old" if text == old else "new" if _complete(text) else "other"
        f = _common(d)
        f["corrupt"] += int(rec["progress"] == "other")
        _run(_cli("report", d, "--out", d / "report.html"))
        f["corrupt"] += int(not _complete((d / "report.html").read_text(errors="replace")))
    rec.update({k: f[k] for k in ("lost", "duplicates", "orphans", "corrupt")})
    if "problem" in f:
        rec["problem"] = f["problem"]
    shutil.rmtree(d, ignore_errors=True)
    return rec


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def _complete(html: str) -> bool:
    return html.rstrip().endswith("</html>") and "Teacher energy" in html


def _progress_images(project: Path) -> int:
    return len(list((project / "images").rglob("*.png"))) if (project / "images").exists() else 0


def _checkpoint_step(path: Path) -> int:
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, weights_only=True)["step"])
    except Exception:
        return -1


def _progress_summary(values: list):
    """What the kills interrupted: counts of 'old'/'new' files, or the sorted counts reached
    (images stored, checkpoint step, changes acknowledged)."""
    if all(isinstance(v, str) for v in values if v is not None):
        return {k: values.count(k) for k in sorted({v for v in values if v is not None})}
    return sorted(v for v in values if v is not None)


def campaign(trials: int, jobs=JOBS, seed: int = 0, work: Path | None = None) -> dict:
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="kill-anywhere-") if work is None else None
    bench = Bench(Path(tmp.name) if tmp else Path(work))
    try:
        ref = bench.build()
        records = []
        for i in range(trials):
            for job in jobs:
                try:
                    records.append(trial(bench, ref, job, rng, i))
                except Exception as e:  # a resume that failed: recorded, and counted as an error
                    records.append({"job": job, "trial": i, "killed": True, "error": f"{type(e).__name__}: {e}",
                                    "lost": 0, "duplicates": 0, "orphans": 0, "corrupt": 0})
    finally:
        if tmp:
            tmp.cleanup()
    summary = {}
    for job in jobs:
        rs = [r for r in records if r["job"] == job]
        summary[job] = {"trials": len(rs), "killed_while_running": sum(r["killed"] for r in rs),
                        **{k: sum(r[k] for r in rs) for k in ("lost", "duplicates", "orphans", "corrupt")},
                        "errors": sum("error" in r for r in rs),
                        "progress_at_kill": _progress_summary([r.get("progress") for r in rs]),
                        "clean_run_s": round(ref["seconds"][job][1], 2),
                        "clean_work_s": round(ref["seconds"][job][1] - ref["seconds"][job][0], 2)}
    return {"summary": summary, "trials": records, "seed": seed}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--curator":
        curator(Path(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=20, help="trials per job")
    p.add_argument("--jobs", default=",".join(JOBS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    t = time.time()
    res = campaign(a.trials, a.jobs.split(","), a.seed)
    res["command"] = "python -m benchmarks.kill_anywhere " + " ".join(argv)
    res["wall_s"] = round(time.time() - t, 1)
    print(json.dumps(res["summary"], indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
