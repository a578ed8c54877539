"""Export for a cluster: a job's spec plus ready launch scripts for several nodes.

``export_cluster("generate", spec, prompts, out, nodes=4, gpus_per_node=8)`` writes into ``out``:

- ``spec.json``: the job's spec (for a generation, with ``prompts = "prompts.json"`` beside it);
- ``launch_torchrun.sh``: ``torchrun`` for one node of the run (run it on every node, or let
  SLURM do it);
- ``launch_accelerate.sh``: the same run through ``accelerate launch``;
- ``slurm.sbatch``: a SLURM batch script: ``srun`` starts ``torchrun`` once per node, with the
  first node as the rendezvous;
- ``README.txt``: what to edit (the project path as the cluster sees it) and how to run it.

Every process runs ``prism generate spec.json`` (or ``prism distill``): the job reads its rank
from the environment, as on one machine.  The project folder must be on a file system every
node sees; only the main rank (node 0, process 0) writes its catalog (see ``docs/SCALE_OUT.md``).
When the job ends, open the project in the app: it shows the merged results.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PORT = 29500

TORCHRUN = """#!/usr/bin/env bash
# {kind} on {nodes} node(s) x {gpus} process(es): run this on every node (SLURM: see slurm.sbatch).
#   NODE_RANK: this node's index (0 on the first); MASTER_ADDR: the first node's address.
set -euo pipefail
cd "$(dirname "$0")"
PRISM=${{PRISM:-prism}}
export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-{threads}}}
exec $PRISM torchrun --nnodes={nodes} --nproc-per-node={gpus} --node-rank="${{NODE_RANK:-0}}" \\
    --rdzv-backend=c10d --rdzv-endpoint="${{MASTER_ADDR:-127.0.0.1}}:${{MASTER_PORT:-{port}}}" \\
    --rdzv-id="${{RDZV_ID:-prism-{kind}}}" --no-python $PRISM {kind} spec.json
"""

ACCELERATE = """#!/usr/bin/env bash
# {kind} through Hugging Face accelerate on {nodes} node(s) x {gpus} GPU(s): run it on every node.
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-{threads}}}
exec accelerate launch {multi}--num_machines {nodes} --num_processes {world} --machine_rank "${{NODE_RANK:-0}}" \\
    --main_process_ip "${{MASTER_ADDR:-127.0.0.1}}" --main_process_port "${{MASTER_PORT:-{port}}}" \\
    -m prism_gui.cli {kind} spec.json
"""

SLURM = """#!/usr/bin/env bash
#SBATCH --job-name=prism-{kind}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
#SBATCH --output=prism-{kind}-%j.log
# PRISM Studio: {kind} on {nodes} node(s) x {gpus} GPU(s). Submit with: sbatch slurm.sbatch
# (activate the environment that has PRISM Studio first, or set PRISM to its `prism` command)
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-$(dirname "$0")}}"
PRISM=${{PRISM:-prism}}
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS={threads}
srun --kill-on-bad-exit=1 $PRISM torchrun --nnodes="$SLURM_NNODES" --nproc-per-node={gpus} \\
    --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:{port}" --rdzv-id="$SLURM_JOB_ID" \\
    --no-python $PRISM {kind} spec.json
"""

README = """PRISM Studio: {kind} on a cluster ({nodes} node(s) x {gpus} process(es) = {world})

1. Copy this folder to the cluster. Edit spec.json: "project" must be the project folder's path
   as every node sees it (a shared file system); {extra}
2. SLURM: sbatch slurm.sbatch   from this folder (edit --time and --cpus-per-task to your site)
   Without SLURM: on every node run  NODE_RANK=<i> MASTER_ADDR=<first node> ./launch_torchrun.sh
   (or ./launch_accelerate.sh).
3. A stopped or failed job resumes where it was: submit it again (any number of nodes).
4. Open the project in PRISM Studio to see the results.
"""


def export_cluster(kind: str, spec: dict, out, *, nodes: int = 1, gpus_per_node: int = 1, prompts=None,
                   cpus_per_task: int = 8, time: str = "24:00:00") -> list[Path]:
    """Write ``spec`` and launch scripts for ``nodes`` x ``gpus_per_node`` processes into ``out``."""
    if kind not in ("generate", "distill"):
        raise ValueError(f"kind must be 'generate' or 'distill', not {kind!r}")
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError("nodes and gpus_per_node must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    extra = ""
    if kind == "generate":
        src = prompts or spec.get("prompts")
        if not src or not Path(src).is_file():
            raise ValueError(f"a generation needs its prompt file: '{src}' does not exist")
        if Path(src).resolve() != (out / "prompts.json").resolve():
            shutil.copyfile(src, out / "prompts.json")
        spec["prompts"] = "prompts.json"
        extra = "prompts.json is the run's prompt set."
    else:
        extra = "\"out_dir\" too, where the student is written."
    world = nodes * gpus_per_node
    threads = max(1, cpus_per_task // gpus_per_node)
    fields = dict(kind=kind, nodes=nodes, gpus=gpus_per_node, world=world, port=PORT, threads=threads,
                  cpus=cpus_per_task, time=time, extra=extra, multi="--multi_gpu " if world > 1 else "")
    files = {"spec.json": json.dumps(spec, indent=2) + "\n", "launch_torchrun.sh": TORCHRUN.format(**fields),
             "launch_accelerate.sh": ACCELERATE.format(**fields), "slurm.sbatch": SLURM.format(**fields),
             "README.txt": README.format(**fields)}
    paths = []
    for name, text in files.items():
        p = out / name
        p.write_text(text)
        if name.endswith((".sh", ".sbatch")):
            p.chmod(0o755)
        paths.append(p)
    return paths
