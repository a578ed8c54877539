"""A teacher: a classifier plus its input size, normalization and class names, and how images
in the engine's range [-1, 1] enter it (:meth:`Teacher.preprocess`, differentiable, so energies
back-propagate to the sampler).  Loading one is ``load.py``'s job."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from prism_gui.engine.teachers.errors import TeacherLoadError


@dataclasses.dataclass
class Teacher:
    model: torch.nn.Module
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    class_descriptions: list[str] | None = None
    source: str = ""
    architecture: str = ""
    card: dict = dataclasses.field(default_factory=dict)
    crop_pct: float = 1.0  # real images: resize the short side to size / crop_pct, then center-crop
    class_ids: list[str] | None = None  # e.g. ImageNet's WordNet ids ("n01440764"), for evaluation folders
    interpolation: str = "bilinear"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def has_batchnorm(self) -> bool:
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules())

    def to(self, device) -> Teacher:
        self.model.to(device)
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (N, C, H, W) -> the teacher's normalized input (differentiable)."""
        c, h, w = self.input_size
        x = (images.float() + 1.0) / 2.0
        if x.shape[1] != c:
            if c == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
            else:
                raise ValueError(f"cannot feed {x.shape[1]}-channel images to a {c}-channel teacher")
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate (pre-logits) features, for precision/recall metrics."""
        x = self.preprocess(images)
        if hasattr(self.model, "forward_features") and hasattr(self.model, "forward_head"):
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        raise TeacherLoadError(
            f"Teacher '{self.source}' exposes no penultimate features (TorchScript or a non-timm "
            "model): load it as a timm architecture plus checkpoint to compute precision/recall.")
