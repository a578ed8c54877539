"""Model weight files read as bytes, never unpickled: what kind a file is, what is wrong with it
(empty, truncated, a web page, a lying safetensors header), and which callables a pickle inside it
would import.  Teachers, students, resume files and local language models all pass through here
before any library loads them."""

from __future__ import annotations

import json
from pathlib import Path


def sniff_model_file(path: str | Path) -> str:
    """``"torchscript"``, ``"safetensors"``, ``"state_dict"`` (a ``torch.save`` pickle or zip) or
    ``"unknown"``, read from the file's bytes."""
    import zipfile

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
        return "unknown"
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n <= path.stat().st_size - 8:
            return "safetensors"
    if head[:1] == b"\x80":  # a legacy (non-zip) pickle
        return "state_dict"
    return "unknown"


MAX_SAFETENSORS_HEADER = 100 * 2**20  # a safetensors header is a few hundred KB even for the largest models


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with a checkpoint file, read from its bytes without unpickling anything (a
    phrase that follows the file's name), or None when it looks whole."""
    import zipfile

    if path.is_dir():
        return "is a folder, not a checkpoint file: give the .safetensors/.pth file inside it"
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): the copy or download did not finish. Copy or export it again"
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        return (f"is truncated: it starts as a torch.save archive but its end is missing ({size:,} bytes). "
                "Copy or download it again")
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if head[8:9] == b"{":  # a safetensors file: 8 bytes of header length, then a JSON header
        if n > size - 8 or n > MAX_SAFETENSORS_HEADER:
            return (f"is truncated or its header lies: its safetensors header says {n:,} bytes, but the file has "
                    f"{size:,}. Copy or download it again")
        with open(path, "rb") as f:
            f.seek(8)
            try:
                header = json.loads(f.read(n))
                ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                return "is damaged: its safetensors header is not readable JSON. Copy or export it again"
        need = 8 + n + max(ends, default=0)
        if need > size:
            return (f"is truncated: its header places tensor data up to byte {need:,}, but the file has {size:,} "
                    "bytes. Copy or download it again")
        return None
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        return None
    text = head.lstrip()
    if text[:1] in (b"<", b"{", b"[", b"#") or all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        shown = head.decode("ascii", "replace").split("\n")[0].strip()[:40]
        return (f"is a text file, not a checkpoint (it starts with '{shown}'; a web page saved in place of the file?). "
                "Download the checkpoint itself")
    return ("is not a checkpoint: its bytes are neither a safetensors file nor a torch.save archive (random or "
            "damaged data?). Export the weights again with safetensors or torch.save(model.state_dict(), path)")


def pickle_globals(path: Path) -> list[str]:
    """The Python callables a pickled file would import when unpickled (``posix.system``...),
    found by reading its opcodes: nothing is unpickled or run."""
    import io
    import pickletools
    import zipfile

    found: list[str] = []

    def scan(f) -> None:
        for _ in range(5):  # a legacy torch.save file is several pickles in a row
            strings: list[str] = []
            try:
                for op, arg, _pos in pickletools.genops(f):
                    if op.name in ("GLOBAL", "INST"):
                        found.append(str(arg).replace(" ", "."))
                    elif isinstance(arg, str):
                        strings.append(arg)
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
            except Exception:  # the end of the pickles, or bytes that are not one
                return

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.endswith("data.pkl"):
                        scan(io.BytesIO(z.read(name)))
        else:
            with open(path, "rb") as f:
                scan(f)
    except (OSError, zipfile.BadZipFile):
        pass
    return list(dict.fromkeys(found))


SAFE_PICKLE_MODULES = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray")


def weight_file_problem(path: Path) -> str | None:
    """What keeps a weights file of a model folder (``pytorch_model.bin``, ``*.safetensors`` ...)
    from being read safely, as a phrase after its name, or None: a damaged file, or a pickle that
    would run code (found by reading its opcodes, never by unpickling)."""
    problem = checkpoint_problem(path)
    if problem:
        return problem.split(". ")[0]
    code = [g for g in pickle_globals(path) if not g.startswith(SAFE_PICKLE_MODULES)]
    if code:
        return (f"holds Python objects that only running code from the file could load ({', '.join(code[:3])}); "
                "PRISM Studio does not load pickles")
    return None
