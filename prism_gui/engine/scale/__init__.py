"""Scale-out: the same Qt-free jobs on several processes, GPUs and nodes, over torch.distributed.

- :mod:`.ranks`: a job's view of its processes over ``torch.distributed`` (initialized by
  ``accelerate``'s ``PartialState``: gloo on CPUs, NCCL on GPUs).
- :mod:`.worker`: what one process of a run does: the job for its rank, events as JSON lines.
- :mod:`.launch`: ``torchrun`` from the CLI and the app (``--processes N``), frozen apps included.
- :mod:`.cluster`: a spec plus ready ``torchrun``/``accelerate launch`` and SLURM scripts.
"""
