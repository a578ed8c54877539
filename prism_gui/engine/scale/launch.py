"""Starting a job on several processes of this machine, from the CLI and from the app.

``launch(["generate", SPEC], 4)`` runs ``torchrun --standalone --nproc-per-node 4 --no-python
<this program> generate SPEC`` and yields the main rank's events as they come (the same events
a one-process job yields), so a progress bar or the app's panels follow a multi-process run the
way they follow a local one.  Stopping it (the cancel token) sends SIGTERM to ``torchrun``, which
passes it to every rank: each stores its finished images and exits.

Everything is started through :func:`self_command`, the program's own CLI: ``python -m
prism_gui.cli`` from a source or pip install, and the executable itself in a frozen app (there
is no ``python script.py`` inside a PyInstaller bundle; ``torchrun --no-python`` re-executes the
app's executable, whose ``cli`` argument routes to the CLI).  ``torchrun`` itself is started the
same way (``<program> torchrun ...``), so one code path serves both.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from prism_gui.engine.data.layout import RunPaths
from prism_gui.engine.events import DistillDone
from prism_gui.engine.jobs import Cancelled, CancelToken, Event


class RunFailed(RuntimeError):
    """A multi-process run ended with an error (its message is the failing rank's)."""


def self_command() -> list[str]:
    """The command that runs this program's CLI (``prism ...``)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "cli"]
    return [sys.executable, "-m", "prism_gui.cli"]


def torchrun_command(args: Sequence[str], processes: int) -> list[str]:
    """``torchrun`` on this machine (``--standalone``: its own rendezvous on a free port)."""
    return [*self_command(), "torchrun", "--standalone", f"--nproc-per-node={int(processes)}", "--no-python",
            *self_command(), *args]


def max_processes(device: str = "auto") -> int:
    """How many processes a run on this machine can use: one per GPU, or one per CPU core when
    the job runs on the CPU (``device = "cpu"`` or no GPU)."""
    import torch

    if (device or "auto").lower() != "cpu" and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1 if sys.platform == "win32" else max(1, os.cpu_count() or 1)


def check_processes(processes: int, device: str = "auto") -> None:
    """Refuse a number of processes this machine cannot give (one per GPU when on GPUs)."""
    import torch

    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    if (device or "auto").lower() != "cpu" and torch.cuda.is_available():
        n = torch.cuda.device_count()
        if processes > n:
            raise ValueError(f"{processes} processes but {n} GPU(s) on this machine: use at most {n} "
                             "(one process per GPU), or device = 'cpu'")
    if sys.platform == "win32" and processes > 1:
        raise ValueError("several processes need torch.distributed's launcher, which this app supports on Linux "
                         "and macOS: use processes = 1 on Windows")


def launch(args: Sequence[str], processes: int, *, cancel: CancelToken | None = None,
           env: dict | None = None, stop_timeout: float = 120.0) -> Iterator[Event]:
    """Run ``prism <args>`` on ``processes`` processes; yields the main rank's events; raises
    :class:`RunFailed` with the failing rank's message, or ``Cancelled`` when stopped."""
    from prism_gui.engine.scale.worker import ERROR_PREFIX, first_json, parse_event

    cancel = cancel or CancelToken()
    cmd = torchrun_command(args, processes)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, **(env or {}), "PRISM_EVENTS": "jsonl", "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, name="prism-launch-reader", daemon=True).start()
    tail: collections.deque = collections.deque(maxlen=40)
    error = None
    stopped = False
    try:
        while True:
            if cancel.cancelled and not stopped:
                stopped = True
                _stop(proc, stop_timeout)
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            ev = parse_event(line)
            if ev is not None:
                yield ev
            elif line.startswith(ERROR_PREFIX) and (found := first_json(line[len(ERROR_PREFIX):])) is not None:
                error = found
            elif line.strip():
                tail.append(line)
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # the caller stopped iterating: stop the run
            _stop(proc, stop_timeout)
    if stopped:
        raise Cancelled()
    if error is not None and error.get("type") not in ("Cancelled", "ProcessLost"):
        raise RunFailed(error["message"])
    if rc != 0:  # a process died (or torchrun stopped the main one because another failed)
        why = [x.strip() for x in tail if any(k in x for k in ("exitcode", "Signal", "rank", "Error", "error"))]
        raise RunFailed(f"the run on {processes} processes failed (exit code {rc}): a process ended unexpectedly"
                        + (": " + "; ".join(why[-6:]) if why else "")
                        + ". Finished images and checkpoints are kept: run it again to resume.")


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to torchrun (it passes it on to the ranks), then SIGKILL to the whole group."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def merge_after(project: str, run: str | None = None) -> int:
    """After a multi-process generation ends, however it ended (and when the app opens a project
    a cluster job wrote): merge rows that ranks stored after the main rank's last merge, of
    ``run`` or of every run (under the project lock; skipped while another writer holds it)."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.lock import ProjectLocked, project_lock
    from prism_gui.engine.data.shards import merge_shards, shard_files

    if not shard_files(project, run):
        return 0
    try:
        with project_lock(project, "merge of waiting rows"), Catalog(project) as cat:
            return len(merge_shards(cat, run))
    except ProjectLocked:
        return 0


def launch_generation(spec, prompts, processes: int, *, cancel: CancelToken | None = None) -> Iterator[Event]:
    """The app's multi-process generation: ``spec`` (a GenerateSpec) and ``prompts`` written to
    ``runs/<run>/job.json`` and ``prompts.json`` in the project, then :func:`launch`; rows left
    waiting are merged at the end, however it ends."""
    from prism_gui.engine.data.files import atomic_write_text

    check_processes(processes, spec.device)
    paths = RunPaths.of(spec.project, spec.run)
    folder = paths.dir
    folder.mkdir(parents=True, exist_ok=True)
    prompts.save(paths.prompts)
    atomic_write_text(folder / "job.json", json.dumps({**spec.to_dict(), "prompts": str(paths.prompts)}, indent=2))
    try:
        yield from launch(["generate", str(folder / "job.json")], processes, cancel=cancel)
    finally:
        merge_after(spec.project, spec.run)


def launch_distillation(spec, processes: int, *, teacher=None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """The app's multi-process distillation: ``spec`` (a DistillSpec, whose ``out_dir`` it needs:
    the student comes back through it) in ``out_dir/job.json``, then :func:`launch`; the last
    event carries the exported student, as a one-process run's does."""

    from prism_gui.engine.data.files import atomic_write_text

    check_processes(processes, spec.device)
    if not spec.out_dir:
        raise ValueError("a distillation on several processes needs an output folder (out_dir): the student comes "
                         "back through it")
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "job.json", json.dumps(dataclasses.asdict(spec), indent=2))
    last = None
    for ev in launch(["distill", str(out / "job.json")], processes, cancel=cancel):
        if "result" in ev.data:
            last = ev
            continue
        yield ev
    if last is not None:
        from prism_gui.engine.teachers.spec import TeacherSpec
        from prism_gui.engine.training.export import load_student

        teacher = teacher or TeacherSpec.from_value(spec.teacher).load()
        yield dataclasses.replace(last, data=DistillDone(last.data["result"], load_student(out, teacher)))
