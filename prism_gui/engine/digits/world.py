"""The Digits world as a provider: its teacher, its image sets and its timm architectures.

Imported by :func:`prism_gui.engine.worlds.load_worlds`; generic modules never import it.
"""

from __future__ import annotations

import json

import torch

import prism_gui.engine.digits.models  # noqa: F401  (registers digits_cnn and digits_student in timm)
from prism_gui.engine.data.datasets import TensorImages
from prism_gui.engine.teachers.checkpoints import read_state_dict
from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.teachers.teacher import Teacher
from prism_gui.engine.worlds import IMAGE_SETS, TEACHERS
from prism_gui.resources import resource_path


@TEACHERS.register("digits", "the Digits teacher (digits_cnn), trained on scikit-learn's handwritten digits")
def load_digits_teacher() -> Teacher:
    import timm

    folder = resource_path("digits_teacher")
    card_path = folder / "card.json"
    if not card_path.exists():
        raise TeacherLoadError(
            f"The built-in Digits teacher is missing ({card_path}): rebuild it with "
            "`python -m prism_gui.engine.digits.train_teacher`.")
    card = json.loads(card_path.read_text())
    model = timm.create_model(card["architecture"], num_classes=card["num_classes"])
    model.load_state_dict(read_state_dict(folder / "model.safetensors"))
    return Teacher(model=model.eval(), input_size=tuple(card["input_size"]), mean=tuple(card["mean"]),
                   std=tuple(card["std"]), class_names=list(card["class_names"]),
                   class_descriptions=card.get("class_descriptions"), source="digits",
                   architecture=card["architecture"], card=card)


def _split_set(which: str) -> TensorImages:
    from prism_gui.engine.digits.data import load_split

    x, y = load_split(which)
    return TensorImages(torch.from_numpy(x).unsqueeze(1) / 8 - 1, y)


@IMAGE_SETS.register("digits-test", "the Digits test split (719 real handwritten digits)")
def digits_test(teacher=None) -> TensorImages:
    return _split_set("test")


@IMAGE_SETS.register("digits-train", "the Digits teacher's training split (1,078 real digits)")
def digits_train(teacher=None) -> TensorImages:
    return _split_set("train")
