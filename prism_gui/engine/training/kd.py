"""The student and its loss: a timm architecture sized to the teacher, and KL at a temperature."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prism_gui.engine.registry import Registry

STUDENTS = Registry("student")  # the students the menus offer: name -> builder(teacher) -> module


def timm_student(name: str):
    """A builder of timm architecture ``name``, randomly initialized, sized to the teacher's
    classes and input channels."""

    def build(teacher) -> torch.nn.Module:
        import timm

        from prism_gui.engine.worlds import load_worlds

        load_worlds()  # built-in worlds register their students in timm
        return timm.create_model(name, pretrained=False, num_classes=teacher.num_classes,
                                 in_chans=teacher.input_size[0])

    return build


for _name, _help in (("digits_student", "built-in Digits student (3 conv-BN layers)"),
                     ("resnet18", "timm ResNet-18, random init"),
                     ("mobilenetv3_small_100", "timm MobileNetV3-Small, random init"),
                     ("resnet50", "timm ResNet-50, random init")):
    STUDENTS.register(_name, _help)(timm_student(_name))


def make_student(name: str, teacher) -> torch.nn.Module:
    """Student ``name``: one of :data:`STUDENTS`, or any other timm architecture."""
    import timm

    from prism_gui.engine.worlds import load_worlds

    if name in STUDENTS:
        return STUDENTS.get(name)(teacher)
    load_worlds()
    if not timm.is_model(name):
        raise ValueError(f"unknown student '{name}': choose a timm architecture or one of {STUDENTS.names()}")
    return timm_student(name)(teacher)


def kd_loss(s_logits, t_logits, T: float, alpha_ce: float = 0.0) -> torch.Tensor:
    """KL at temperature ``T`` (times T²), in float32 whatever the logits' dtype."""
    s_logits, t_logits = s_logits.float(), t_logits.float()
    kl = F.kl_div(F.log_softmax(s_logits / T, -1), F.log_softmax(t_logits / T, -1), log_target=True,
                  reduction="batchmean") * T * T
    if alpha_ce:
        kl = (1 - alpha_ce) * kl + alpha_ce * F.cross_entropy(s_logits, t_logits.argmax(-1))
    return kl
