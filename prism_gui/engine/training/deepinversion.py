"""DeepInversion-style baseline: images optimized from noise against the teacher.

Loss per batch: cross-entropy to the intended class + ``w_bn`` x BatchNorm-statistics energy
(batch statistics vs running statistics, as in Yin et al., 2020) + ``w_tv`` x total variation
+ ``w_l2`` x L2.  Pixels live in [-1, 1] through a tanh parameterization.  The images are
stored in the project's catalog like generated ones (generator ``deepinversion``), scored with
the same energies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.engine.seeds import item_seed


@dataclasses.dataclass
class DeepInversionSpec:
    project: str
    run: str = "deepinversion"
    images_per_class: int = 20
    iterations: int = 300
    lr: float = 0.1
    w_bn: float = 1.0
    w_tv: float = 0.05
    w_l2: float = 1e-3
    batch_size: int = 100
    seed: int = 0

    def __post_init__(self):
        from prism_gui.engine.data.guard import check_run_name

        check_run_name(self.run, "run name ('run')")


def _batch_bn_loss(teacher, x) -> torch.Tensor:
    losses = []

    def hook(mod, inp, _out):
        a = inp[0]
        mu = a.mean((0, 2, 3))
        var = a.var((0, 2, 3), unbiased=False)
        losses.append(torch.linalg.vector_norm(mu - mod.running_mean) + torch.linalg.vector_norm(var - mod.running_var))

    hooks = [m.register_forward_hook(hook) for m in teacher.model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    try:
        logits = teacher.logits(x)
    finally:
        for h in hooks:
            h.remove()
    bn = torch.stack(losses).sum() if losses else torch.zeros((), device=x.device)
    return logits, bn


def run_deepinversion(spec: DeepInversionSpec, teacher=None, cancel: CancelToken | None = None) -> Iterator[Event]:
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.imaging import to_uint8
    from prism_gui.engine.generation.sampler import score_images
    from prism_gui.engine.teachers.load import load_teacher

    cancel = cancel or CancelToken()
    teacher = teacher or load_teacher("digits")
    teacher.model.eval()
    c, h, w = teacher.input_size
    labels = [k for k in range(teacher.num_classes) for _ in range(spec.images_per_class)]
    total_batches = (len(labels) + spec.batch_size - 1) // spec.batch_size
    from prism_gui.engine.data.lock import project_lock

    with project_lock(spec.project, f"DeepInversion (run '{spec.run}')"):  # it adds images: one writer
        cat = Catalog(spec.project)
        cat.start_run(spec.run, "deepinversion", dataclasses.asdict(spec))
        done = cat.done_items(spec.run)
        try:
            for b in range(total_batches):
                items = [i for i in range(b * spec.batch_size, min(len(labels), (b + 1) * spec.batch_size))]
                if all(i in done for i in items):
                    continue
                gen = torch.Generator().manual_seed(item_seed(spec.seed, b))
                y = torch.tensor([labels[i] for i in items], device=teacher.device)
                z = torch.randn(len(items), c, h, w, generator=gen).to(teacher.device).requires_grad_(True)
                opt = torch.optim.Adam([z], lr=spec.lr)
                for it in range(spec.iterations):
                    cancel.raise_if_cancelled()
                    x = torch.tanh(z)
                    logits, bn = _batch_bn_loss(teacher, x)
                    tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
                    loss = F.cross_entropy(logits, y) + spec.w_bn * bn + spec.w_tv * tv + spec.w_l2 * x.pow(2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if (it + 1) % 25 == 0:
                        yield Event("deepinversion", b * spec.iterations + it + 1, total_batches * spec.iterations,
                                    f"batch {b + 1}/{total_batches} loss {loss.item():.3f}")
                x = torch.tanh(z).detach()
                scores = score_images(teacher, x, y.tolist(), EnergySpec({"class": 1.0}))
                for i, img, sc in zip(items, to_uint8(x), scores, strict=True):
                    if i in done:
                        continue
                    cat.add_image(spec.run, i, img, class_index=labels[i], class_name=teacher.class_names[labels[i]],
                                  prompt=f"deepinversion: {teacher.class_names[labels[i]]}",
                                  seed=item_seed(spec.seed, i), generator="deepinversion",
                                  settings=dataclasses.asdict(spec), score=sc)
            cat.finish_run(spec.run)
            yield Event("deepinversion", total_batches * spec.iterations, total_batches * spec.iterations, "done")
        except BaseException:
            cat.finish_run(spec.run, "interrupted")
            raise
        finally:
            cat.close()
