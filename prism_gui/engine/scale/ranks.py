"""A job's processes over ``torch.distributed`` (see :class:`prism_gui.engine.jobs.Ranks`).

A process started by ``torchrun`` or ``accelerate launch`` finds its rank, the number of
processes and the rendezvous in its environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``...).  ``accelerate``'s ``PartialState`` reads them and initializes the process
group: NCCL when the processes use GPUs (one per local rank), gloo on CPUs (``cpu=True``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch

from prism_gui.engine.jobs import Ranks

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` / ``accelerate launch``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def wants_cpu(device: str) -> bool:
    return (device or "auto").lower() == "cpu" or not torch.cuda.is_available()


class DistRanks(Ranks):
    """This process among those of a ``torch.distributed`` run."""

    def __init__(self, device: str = "auto"):
        from accelerate import PartialState

        cpu = wants_cpu(device)
        # a long timeout: ranks meet at the start and the end of a job that may run for hours
        self.state = PartialState(cpu=cpu, timeout=timedelta(hours=12))
        self.rank = self.state.process_index
        self.world_size = self.state.num_processes
        self.local_rank = self.state.local_process_index
        self._cpu = cpu

    def device(self, preference: str = "auto"):
        if self._cpu:
            return torch.device("cpu")
        return self.state.device  # cuda:<local rank>

    @property
    def backend(self) -> str:
        return str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else "none"

    def share(self, value):
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        torch.distributed.barrier()

    def all_sum(self, values):
        t = torch.as_tensor(np.asarray(values, np.float64))
        dev = self.device()
        t = t.to(dev)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t.cpu().numpy()

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
