"""The one rule for the seed of each item of a run: item ``i`` of a run with base seed ``s`` draws
from ``s * ITEM_SEED_STRIDE + i``.  Generation, DeepInversion and the manifests use it; the app
reads a stored image's base seed back with :func:`base_seed`.  A run killed at any moment and
resumed draws exactly the images it would have drawn."""

from __future__ import annotations

ITEM_SEED_STRIDE = 10_000_000  # items per run before two base seeds would share an item seed
ITEM_SEED_RULE = "seed * 10_000_000 + item"  # as the manifests state it


def item_seed(base: int, item: int) -> int:
    return int(base) * ITEM_SEED_STRIDE + int(item)


def base_seed(seed: int) -> int:
    """The run's base seed of an item's seed."""
    return int(seed) // ITEM_SEED_STRIDE
