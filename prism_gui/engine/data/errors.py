"""The catalog's errors (in a module of their own: the catalog's parts and the jobs raise them)."""

from __future__ import annotations

from pathlib import Path


class CatalogError(RuntimeError):
    pass


class CatalogDamaged(CatalogError):
    """The catalog file cannot be read as a database (truncated, overwritten, not SQLite)."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        super().__init__(
            f"the catalog {path} is damaged ({problem}). Your images are intact and each carries its prompt, seed, "
            f"settings and scores: rebuild the catalog from them with `prism repair-catalog {Path(path).parent}` "
            "(or File > Open in the app, which offers it); curation comes back from curation.jsonl. The damaged "
            "file is kept beside the new one.")
