"""Job specs on disk: JSON or TOML files that the GUI edits and the CLI runs.

Every value is checked against its setting's type before a job starts: a wrong type, NaN or an
infinite number, a count below its minimum or absurdly large, and an unknown key (also inside
``sampler``, ``guidance`` ...) are refused with the file, the setting and what to write instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from pathlib import Path


class SpecError(ValueError):
    pass


def read_text_file(path: Path, what: str, error=ValueError) -> str:
    """The text of a UTF-8 file (a BOM is allowed), or ``error`` naming the file and the fix."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{what} '{path}' is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}): save it as "
                    "UTF-8 (in most editors: Save As > Encoding > UTF-8).") from None


def load_spec(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Spec file '{path}' " + ("is a folder: give a .json or .toml file."
                                                   if path.is_dir() else "does not exist."))
    text = read_text_file(path, "Spec file", SpecError)
    if not text.strip():
        raise SpecError(f"Spec file '{path}' is empty: write the job's settings in it (see docs/CLI.md).")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"Spec file '{path}' is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from e
    if not isinstance(data, dict):
        raise SpecError(f"Spec file '{path}' must hold settings (a JSON object or TOML keys), not a "
                        f"{type(data).__name__}.")
    return data


def check_keys(data: dict, allowed, source: str = "spec", what: str = "", also: str = "") -> None:
    """Refuse settings outside ``allowed``, naming them and the valid ones."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{source}: unknown settings {unknown}{f' for {what}' if what else ''}; valid: "
                        f"{sorted(allowed)}{also}")


# counts a spec may hold: (least, most).  The most is far beyond any real job: it catches a typo
# (an extra zero or three) before a job plans billions of items or allocates a batch it cannot hold.
LIMITS: dict[str, tuple[int, int]] = {
    "epochs": (1, 100_000),
    "batch_size": (1, 1_000_000),
    "images_per_class": (1, 1_000_000),
    "per_class": (1, 100_000),
    "steps": (1, 10_000),
    "eval_every": (1, 100_000),
    "checkpoint_every": (0, 10**9),
    "workers": (-1, 1024),
    "every": (1, 10_000),
    "recurrence": (1, 1_000),
    "micro_batch": (0, 1_000_000),
    "seed": (0, 2**63 - 1),
    "k": (1, 10_000),
    "max_real": (1, 10**9),
    "resolution": (0, 16_384),
}
# real-valued settings that must be positive or in a range
REAL_LIMITS: dict[str, tuple[float, float]] = {
    "lr": (0.0, 10.0),
    "temperature": (1e-6, 1e6),
    "weight_decay": (0.0, 10.0),
    "alpha_ce": (0.0, 1.0),
    "cfg": (0.0, 100.0),
    "eta": (0.0, 1.0),
}


def _type_name(tp) -> str:
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a text (in quotes)",
             list: "a list", tuple: "a list", dict: "a table"}
    return names.get(typing.get_origin(tp) or tp, getattr(tp, "__name__", str(tp)))


def _shown(value) -> str:
    return json.dumps(value) if isinstance(value, (str, bool)) or value is None else repr(value)


def _check_union(name: str, value, options, source: str):
    """``value`` as the first of ``options`` (a Union's) that takes it; None where None is one."""
    if value is None and type(None) in options:
        return value
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return check_value(name, value, option, source)
        except SpecError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise SpecError(f"{source}: '{name}' is {_shown(value)}: give {wanted}.")


def check_value(name: str, value, tp, source: str = "spec"):
    """``value`` of setting ``name`` (dotted for nested ones) as annotation ``tp`` allows it;
    returns the value (a whole float such as 3.0 becomes 3 for an int setting), or raises a
    :class:`SpecError` that names the setting, the value and what to write."""
    where = f"{source}: '{name}'"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _check_union(name, value, typing.get_args(tp), source)
    if tp is typing.Any:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where} is {value!r}: give a finite number" +
                        (f" from {REAL_LIMITS[name.split('.')[-1]][0]:g} to {REAL_LIMITS[name.split('.')[-1]][1]:g}."
                         if name.split(".")[-1] in REAL_LIMITS else "."))
    key = name.split(".")[-1]
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where} is {_shown(value)}: give true or false (without quotes).")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where} is {_shown(value)}: give a whole number" +
                            (f" from {LIMITS[key][0]:,} to {LIMITS[key][1]:,}." if key in LIMITS else "."))
        if key in LIMITS:
            lo, hi = LIMITS[key]
            if value < lo:
                raise SpecError(f"{where} is {value:,}: it must be at least {lo:,}.")
            if value > hi:
                raise SpecError(f"{where} is {value:,}, far beyond any real job (at most {hi:,}): check for a typo.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where} is {_shown(value)}: give a number (without quotes).")
        if key in REAL_LIMITS:
            lo, hi = REAL_LIMITS[key]
            if not lo <= value <= hi:
                raise SpecError(f"{where} is {value!r}: give a number from {lo:g} to {hi:g}.")
        return float(value) if isinstance(value, int) else value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where} is {_shown(value)}: give a text (in quotes).")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where} is {_shown(value)}: give a list, e.g. [\"a\", \"b\"].")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if args:
            item = args[0]
            return type(value)(check_value(f"{name}[{i}]", v, args[i] if len(args) == len(value) and origin is tuple
                                           else item, source) for i, v in enumerate(value))
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where} is {_shown(value)}: give a table of settings.")
        args = typing.get_args(tp)
        if len(args) == 2:
            return {k: check_value(f"{name}.{k}", v, args[1], source) for k, v in value.items()}
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise SpecError(f"{where} is {_shown(value)}: give a table of {tp.__name__} settings.")
        return check_values(tp, value, source, prefix=f"{name}.")
    return value


def check_values(cls, data: dict, source: str = "spec", prefix: str = "") -> dict:
    """``data`` checked against dataclass ``cls``'s fields: unknown keys and every value (see
    :func:`check_value`); nested dataclass settings (tables) are checked the same way."""
    fields = {f.name for f in dataclasses.fields(cls)}
    check_keys(data, fields, source, f"'{prefix.rstrip('.')}' ({cls.__name__})" if prefix else cls.__name__)
    hints = typing.get_type_hints(cls)
    return {k: check_value(prefix + k, v, hints.get(k, typing.Any), source) for k, v in data.items()}


def check_settings(data: dict, types_: dict, source: str = "spec", also: str = "") -> dict:
    """Like :func:`check_values` for a spec that is a plain dict (``prism prompts``, ``evaluate``,
    ``metrics``): ``types_`` maps each valid key to its annotation."""
    check_keys(data, types_, source, also=also)
    return {k: check_value(k, v, types_[k], source) for k, v in data.items()}


def build(cls, data: dict, source: str = "spec"):
    """Instantiate dataclass ``cls`` from ``data``, naming unknown keys, wrong values and the
    settings the class itself refuses, with the spec file."""
    data = check_values(cls, data, source)
    try:
        return cls(**data)
    except SpecError:
        raise
    except KeyError as e:  # registries say which names are known
        raise SpecError(f"{source}: {e.args[0] if e.args else e}") from e
    except (TypeError, ValueError) as e:
        raise SpecError(f"{source}: {e}") from e
