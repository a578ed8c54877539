"""Accuracy on a real held-out set, streamed: the student's, the teacher's, and their agreement.

An evaluation set is named in specs as ``"digits-test"`` (the Digits world's test split), the
path of a labelled image folder (ImageNet's val folder with WordNet-id subfolders, or class-name
subfolders; see :mod:`~prism_gui.engine.data.folders`), or ``""`` for none.
"""

from __future__ import annotations

import numpy as np
import torch

from prism_gui.engine.data.datasets import TensorImages, image_set, make_loader


def eval_dataset(name, teacher, mapping=None):
    """The evaluation set ``name`` as a dataset of ([-1, 1] images, labels), or None."""
    return image_set(name, teacher, mapping)


@torch.no_grad()
def evaluate(student, teacher, data, labels=None, *, batch_size: int = 512, workers: int | None = None,
             per_class: bool = False, ranks=None) -> dict:
    """``test_accuracy`` (the student's, or the teacher's when ``student`` is None), ``agreement``
    (top-1 equal to the teacher's) and ``teacher_accuracy``; ``data`` is a dataset or an image
    tensor with ``labels``.  With ``per_class``, also accuracy per class (None for absent classes).
    On several processes (``ranks``) each evaluates every ``world_size``-th image and the counts
    are summed over the processes, so every rank returns the whole set's numbers."""
    if labels is not None:
        data = TensorImages(data, labels)
    if ranks is not None and ranks.world_size > 1:
        from torch.utils.data import Subset

        data = Subset(data, range(ranks.rank, len(data), ranks.world_size))
    dev = teacher.device
    if student is not None:
        student.eval()
        dev = next(student.parameters()).device
    teacher.model.eval()
    n_cls = teacher.num_classes
    correct_s = np.zeros(n_cls, np.int64)
    correct_t = np.zeros(n_cls, np.int64)
    count = np.zeros(n_cls, np.int64)
    agree = total = 0
    for xb, yb in make_loader(data, batch_size, device=dev, workers=workers):
        x = teacher.preprocess(xb.to(dev, non_blocking=True))
        t = teacher.model(x).argmax(-1).cpu()
        s = student(x).argmax(-1).cpu() if student is not None else t
        y = yb.long()
        np.add.at(count, y.numpy(), 1)
        np.add.at(correct_s, y.numpy(), (s == y).numpy().astype(np.int64))
        np.add.at(correct_t, y.numpy(), (t == y).numpy().astype(np.int64))
        agree += int((s == t).sum())
        total += len(y)
    if ranks is not None and ranks.world_size > 1:
        summed = ranks.all_sum(np.concatenate([correct_s, correct_t, count, [agree, total]]))
        summed = np.rint(summed).astype(np.int64)
        correct_s, correct_t, count = summed[:n_cls], summed[n_cls : 2 * n_cls], summed[2 * n_cls : 3 * n_cls]
        agree, total = int(summed[-2]), int(summed[-1])
    if total == 0:
        raise ValueError("the evaluation set holds no images")
    res = {"test_accuracy": float(correct_s.sum() / total), "agreement": float(agree / total),
           "teacher_accuracy": float(correct_t.sum() / total), "eval_images": int(total)}
    if per_class:
        res["per_class_accuracy"] = [float(c / n) if n else None for c, n in zip(correct_s, count, strict=True)]
        res["per_class_images"] = count.tolist()
    return res
