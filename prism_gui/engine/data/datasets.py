"""Streaming image datasets: catalog rows, labelled folders and in-memory tensors, one form.

Every dataset yields ``(image, label)`` with the image a float tensor in the engine's range
[-1, 1], ``(C, H, W)``; :meth:`Teacher.preprocess` does the normalization on the device.  So
distillation, evaluation and metrics never hold a whole set in memory: a ``DataLoader``
(workers, pinned memory) decodes batches as they are needed.

- :class:`CatalogImages`: a project's stored images (PNG), resized to the teacher's input size
  when the generator's resolution differs (the same antialiased bilinear resize as
  ``Teacher.preprocess``).  Small sets (up to ``cache_mb`` of pixels) are decoded once and kept
  as uint8, so a Digits run does not re-decode its images every epoch; the cap keeps memory
  bounded whatever the catalog's size.
- :class:`FolderImages`: real images (any size or mode) through the teacher's own evaluation
  transform from timm: resize the short side to ``size / crop_pct``, center-crop, in the
  model's interpolation; grayscale/CMYK/RGBA/palette images are converted first.
- :class:`TensorImages`: images already in memory (the Digits test split, a benchmark's set).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

DEFAULT_CACHE_MB = 128


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) -> (C, *size), as ``Teacher.preprocess`` resizes (bilinear, antialiased)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def pm1_tensor(image_hwc: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An 8-bit (H, W, C) image as the engine's (C, H, W) [-1, 1] tensor, resized to ``size``."""
    x = torch.from_numpy(np.ascontiguousarray(image_hwc)).permute(2, 0, 1).float() / 127.5 - 1.0
    return x if size is None else _resize(x, size)


class TensorImages(Dataset):
    def __init__(self, images: torch.Tensor, labels: Sequence[int] | np.ndarray | None = None):
        self.images = images
        self.labels = np.zeros(len(images), np.int64) if labels is None else np.asarray(labels, np.int64)
        if len(self.labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


class CatalogImages(Dataset):
    """Stored images of a catalog, by their rows (``path``, ``class_index``)."""

    def __init__(self, root: str | Path, rows: Sequence[dict], size: tuple[int, int] | None = None,
                 channels: int | None = None, cache_mb: float = DEFAULT_CACHE_MB):
        from PIL import Image

        self.root = Path(root)
        self.paths = [str(r["path"]) for r in rows]
        self.labels = np.array([int(r["class_index"]) for r in rows], np.int64)
        self.ids = [int(r["id"]) for r in rows if "id" in r]
        self.size = tuple(size) if size is not None else None
        self.channels = channels
        self._cache: np.ndarray | None = None
        if self.paths and cache_mb > 0:
            with Image.open(self.root / self.paths[0]) as im:
                w, h = im.size
                c = len(im.getbands())
            if len(self.paths) * w * h * c <= cache_mb * 2**20:
                arrs = [self._read(i) for i in range(len(self.paths))]
                if len({a.shape for a in arrs}) == 1:
                    self._cache = np.stack(arrs)

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.root / self.paths[i]) as im:
            if self.channels == 1 and im.mode != "L":
                im = im.convert("L")
            elif self.channels == 3 and im.mode != "RGB":
                im = im.convert("RGB")
            a = np.array(im)  # a writable copy: torch.from_numpy refuses read-only memory
        return a[..., None] if a.ndim == 2 else a

    def __getitem__(self, i: int):
        a = self._cache[i] if self._cache is not None else self._read(i)
        return pm1_tensor(a, self.size), int(self.labels[i])


def eval_transform(teacher):
    """The teacher's own evaluation transform (timm), ending in [-1, 1] instead of normalized."""
    from timm.data import create_transform

    c, h, w = teacher.input_size
    return create_transform(input_size=(c, h, w), is_training=False, interpolation=teacher.interpolation,
                            crop_pct=teacher.crop_pct, mean=(0.5,) * c, std=(0.5,) * c)


class FolderImages(Dataset):
    """Real images with labels, through a transform that ends in [-1, 1] tensors."""

    def __init__(self, items: Sequence[tuple[Path, int]], transform, channels: int = 3):
        self.files = [Path(p) for p, _ in items]
        self.labels = np.array([k for _, k in items], np.int64)
        self.transform = transform
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.files[i]) as im:
                im = to_mode(im, self.mode)
                x = self.transform(im)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise OSError(f"cannot read image '{self.files[i]}': {e}. Remove or replace the file.") from e
        return x, int(self.labels[i])


def to_mode(im, mode: str):
    """``im`` as an 8-bit ``L`` or ``RGB`` image: CMYK, palette and alpha images convert as timm's
    and torchvision's loaders do (alpha dropped); 16- and 32-bit images are scaled to 8 bits
    (PIL's own conversion clips them, turning a 16-bit photo white)."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            top = 65535.0
        elif im.mode == "F":
            top = 1.0 if a.size and a.max() <= 1.0 else 255.0
        else:  # 32-bit integers: 16-bit data as PIL opens some PNGs and TIFFs, else 8-bit
            top = 65535.0 if a.size and a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    return im if im.mode == mode else im.convert(mode)


def folder_dataset(root: str | Path, teacher, mapping=None) -> FolderImages:
    """A labelled folder (see :mod:`~prism_gui.engine.data.folders`) as the teacher sees it."""
    from prism_gui.engine.data.folders import folder_items

    items = folder_items(root, list(teacher.class_names), getattr(teacher, "class_ids", None), mapping)
    return FolderImages(items, eval_transform(teacher), teacher.input_size[0])


NO_SET = ("", "none", None)


def image_set(name, teacher, mapping=None):
    """A real image set named in a spec: a built-in world's set (``"digits-test"``), the path of a
    labelled image folder, or ``""``/``"none"`` for none (returns None)."""
    from prism_gui.engine.worlds import is_named_image_set, named_image_set

    if name in NO_SET:
        return None
    if is_named_image_set(name):
        return named_image_set(name, teacher)
    return folder_dataset(name, teacher, mapping)


def catalog_dataset(project: str | Path, teacher=None, *, cache_mb: float = DEFAULT_CACHE_MB,
                    **filters) -> CatalogImages:
    """A project's stored images matching ``filters`` (run, statuses, energy_max, ...), sized
    for ``teacher`` when given."""
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project, create=False) as cat:
        rows = cat.query(columns="id, path, class_index", **filters)
        top = max((int(r["class_index"]) for r in rows), default=-1)
        name = cat.query(columns="class_name", classes=[top], limit=1)[0]["class_name"] if top >= 0 else ""
    root = Path(project)
    missing = [r["path"] for r in rows if not (root / r["path"]).is_file()]
    if missing:  # the catalog keeps rows whose files went away (a moved folder): say so, never train on less
        raise ValueError(f"{len(missing)} of the {len(rows)} images chosen in '{project}' have no file (first: "
                         f"{missing[0]}): put the files back (a moved images/ folder?), or reject those images in "
                         "the Curate tab to train without them")
    if teacher is not None and top >= teacher.num_classes:  # a teacher with fewer outputs than the images' classes
        raise ValueError(f"the images of '{project}' include class {top} ('{name}'), but the teacher "
                         f"'{getattr(teacher, 'source', '')}' has {teacher.num_classes} outputs (classes 0 to "
                         f"{teacher.num_classes - 1}): distill with the teacher the images were made for, or choose "
                         "runs of this teacher's classes")
    size = tuple(teacher.input_size[1:]) if teacher is not None else None
    channels = teacher.input_size[0] if teacher is not None else None
    return CatalogImages(project, rows, size=size, channels=channels, cache_mb=cache_mb)


class EpochBatches(Sampler):
    """Batches of a fresh random order each epoch, drawn from ``generator`` when iteration
    starts (in the main process, so the order never depends on the number of workers)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True):
        self.n, self.batch_size, self.generator, self.shuffle = n, batch_size, generator, shuffle

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size].tolist()

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size


class PlannedBatches(Sampler):
    """The batches of one epoch's ``order`` (set before each epoch), from global batch ``start``
    on; on several processes, this rank's contiguous share of each global batch (a global batch
    smaller than the number of processes is left out, so every rank always has a share)."""

    def __init__(self, batch_size: int, rank: int = 0, world_size: int = 1):
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.order = torch.zeros(0, dtype=torch.long)
        self.start = 0

    def global_batches(self) -> list[torch.Tensor]:
        out = [self.order[i : i + self.batch_size] for i in range(0, len(self.order), self.batch_size)]
        return [b for b in out if len(b) >= self.world_size]

    def share(self, batch: torch.Tensor) -> tuple[int, torch.Tensor]:
        """(offset in the global batch, this rank's indices)."""
        parts = torch.tensor_split(batch, self.world_size)
        return sum(len(q) for q in parts[: self.rank]), parts[self.rank]

    def __iter__(self):
        for b in self.global_batches()[self.start :]:
            yield self.share(b)[1].tolist()

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.start)


def auto_workers(device, n_items: int) -> int:
    """Decoding workers: none on the CPU (they would compete with the model for the cores) or
    for small sets; on an accelerator up to 8, leaving the process a core."""
    if torch.device(device).type == "cpu" or n_items < 2048:
        return 0
    return max(0, min(8, (os.cpu_count() or 2) - 1))


def make_loader(ds: Dataset, batch_size: int, *, device="cpu", workers: int | None = None,
                generator: torch.Generator | None = None, shuffle: bool = False,
                batch_sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader over ``ds``: shuffled per epoch from ``generator`` when ``shuffle``, in order
    otherwise, or in the batches of ``batch_sampler``; ``workers=None`` picks
    :func:`auto_workers`; pinned memory on CUDA."""
    dev = torch.device(device)
    n_workers = auto_workers(dev, len(ds)) if workers is None or workers < 0 else int(workers)
    # the loader's own generator seeds its workers, so iterating never draws from torch's global
    # generator (which dropout and the student's initialization use)
    if batch_sampler is None:  # (not `or`: an empty sampler is falsy)
        batch_sampler = EpochBatches(len(ds), batch_size, generator, shuffle)
    return DataLoader(ds, batch_sampler=batch_sampler,
                      num_workers=n_workers, pin_memory=dev.type == "cuda", persistent_workers=n_workers > 0,
                      generator=torch.Generator().manual_seed(0))
