"""Built-in worlds plug in here, so generic modules never import them.

A world (today: the Digits world) is a module that, when imported, registers what it provides:
named teachers (``"digits"``), named image sets (``"digits-test"``, ``"digits-train"``) and its
timm architectures.  Generic code asks these registries; the first question imports the worlds
listed in :data:`WORLDS` by name.  A new world is one more module in that tuple.
"""

from __future__ import annotations

import importlib
import threading

from prism_gui.engine.registry import Registry

WORLDS = ("prism_gui.engine.digits.world",)

TEACHERS = Registry("built-in teacher")  # name -> () -> Teacher
IMAGE_SETS = Registry("named image set")  # name -> (teacher) -> Dataset of ([-1, 1] image, label)

_lock = threading.Lock()
_loaded = False


def load_worlds() -> None:
    """Import every built-in world once (idempotent, thread-safe)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for name in WORLDS:
                importlib.import_module(name)
            _loaded = True


def builtin_teacher(name: str):
    load_worlds()
    return TEACHERS.get(name)()


def is_builtin_teacher(name: str) -> bool:
    load_worlds()
    return str(name) in TEACHERS


def named_image_set(name: str, teacher):
    load_worlds()
    return IMAGE_SETS.get(name)(teacher)


def is_named_image_set(name) -> bool:
    load_worlds()
    return isinstance(name, str) and name in IMAGE_SETS
