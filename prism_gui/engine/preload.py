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

        _import_job_libraries()
        _done = True


def _import_job_libraries() -> None:
    """What the jobs import on first use, imported here instead: scikit-learn (the Digits sets,
    k-means selection, PCA maps; it pulls in pandas and pyarrow) and matplotlib's figures (the
    report).  Imported in a job's worker thread, they held the interpreter for seconds in the
    middle of a session (and each import made PySide's import hook read the new modules' source).
    Then the source texts that hook left in ``linecache`` (tens of MB after the warm-up) are given
    back to the allocator: a traceback reads the lines it needs again."""
    import linecache

    import sklearn.cluster
    import sklearn.datasets
    import sklearn.decomposition  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401

    linecache.clearcache()
