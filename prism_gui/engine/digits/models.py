"""Small CNNs of the Digits world, registered in timm beside its own architectures.

``timm.create_model("digits_cnn")`` is the teacher's architecture and
``timm.create_model("digits_student")`` the built-in student, so the engine loads, builds and
distills them through the same timm calls it uses for ImageNet models.  Importing
:mod:`prism_gui.engine.models` registers them.
"""

from __future__ import annotations

import torch
from torch import nn

# pixel values are divided by 16 (range [0, 1]) and then normalized with these
DIGITS_MEAN = (0.305,)
DIGITS_STD = (0.376,)


def _cfg(**kw):
    return {"input_size": (1, 8, 8), "mean": DIGITS_MEAN, "std": DIGITS_STD, "interpolation": "bilinear",
            "crop_pct": 1.0, "crop_mode": "center", "num_classes": 10, "first_conv": "stem.0",
            "classifier": "head", "url": "", **kw}


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DigitsNet(nn.Module):
    """Conv-BN-ReLU stages with max-pooling; timm-style ``forward_features``/``forward_head``."""

    def __init__(self, widths=(32, 64, 128), depth=2, num_classes=10, in_chans=1, drop_rate=0.1,
                 **_):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            for _j in range(depth):
                layers.append(_block(cin, w))
                cin = w
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.stem = layers[0]
        self.features = nn.Sequential(*layers[1:])
        self.num_features = cin
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(cin, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int, *_):
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def _build(arch, widths, depth, pretrained=False, **kwargs):
    """Through timm's own builder, so ``timm.create_model("local-dir:PATH", pretrained=True)`` loads
    a Digits student exported with ``timm.models.save_for_hf`` like any timm model."""
    from timm.models import build_model_with_cfg

    cfg = kwargs.pop("pretrained_cfg", None) or _cfg(architecture=arch)
    cfg = dict(cfg) if isinstance(cfg, dict) else cfg.to_dict()
    cfg.update(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if pretrained and not (cfg.get("file") or cfg.get("hf_hub_id") or cfg.get("state_dict")):
        raise ValueError("Digits models have no downloadable weights: load the shipped "
                         "checkpoint with prism_gui.engine.teachers.load.load_teacher('digits').")
    cfg.setdefault("architecture", arch)
    return build_model_with_cfg(DigitsNet, arch, pretrained, pretrained_cfg=cfg, widths=widths, depth=depth, **kwargs)


def register() -> None:
    """Register the Digits architectures with timm (idempotent)."""
    from timm.models import is_model, register_model

    if is_model("digits_cnn"):
        return

    @register_model
    def digits_cnn(pretrained: bool = False, **kwargs) -> DigitsNet:
        """Digits teacher: 6 conv-BN layers (32-64-128), ~290k parameters."""
        return _build("digits_cnn", (32, 64, 128), 2, pretrained, **kwargs)

    @register_model
    def digits_student(pretrained: bool = False, **kwargs) -> DigitsNet:
        """Built-in Digits student: 3 conv-BN layers (16-32-32), ~14k parameters."""
        return _build("digits_student", (16, 32, 32), 1, pretrained, **kwargs)


register()
