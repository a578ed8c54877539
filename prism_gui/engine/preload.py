"""Import the heavy libraries once, from whichever thread needs them first.

The app imports torch and the engine in a warm-up thread right after its window shows, and a
job may start in a worker thread before that has finished.  Two threads importing diffusers and
transformers at the same time break those libraries' lazy modules ("cannot import name
'PreTrainedModel' from 'transformers'"), so every thread goes through :func:`import_engine`,
which holds one lock while importing.  Qt-free: the CLI can call it too.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def import_engine() -> None:
    """Import torch, torchvision, timm, diffusers, transformers and the engine (idempotent)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import timm  # noqa: F401
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: F401

        # the event-file writer every generation and distillation opens (its import opens an eventfd once)
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        from transformers import CLIPTextModel  # noqa: F401


        _done = True
