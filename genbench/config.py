"""Frozen config dataclasses: built from dicts / TOML with unknown-key errors, written back out.

Each component owns a frozen dataclass; a run composes them and writes them into its run folder
and checkpoints, so anything can be rebuilt from what was written.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A config value or key that is not accepted (the message says what was expected)."""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[C], d: dict[str, Any], *, where: str = "") -> C:
    """Build dataclass ``cls`` from ``d``; unknown keys are errors with suggestions."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    where = where or cls.__name__
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        if k not in fields:
            close = difflib.get_close_matches(k, list(fields), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}: unknown key {k!r}.{hint} Accepted keys: {', '.join(fields)}")
        kwargs[k] = _coerce(v, hints[k], f"{where}.{k}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from e


def override(config: C, overrides: dict[str, Any], *, where: str = "") -> C:
    """``config`` with ``overrides`` applied (nested dataclasses take nested tables)."""
    return from_dict(type(config), _merge(to_dict(config), overrides), where=where or type(config).__name__)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    # recursive: a nested override changes only the leaves it names, at any depth
    out = dict(base)
    for k, v in overrides.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data dict of a (nested) dataclass: tuples become lists, for JSON and TOML."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return v

    return conv(config)


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found.")
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:  # TOML files are UTF-8
        raise ConfigError(f"{p}: not valid TOML ({e}).") from e


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(_toml_char(c) for c in v) + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {type(v).__name__} to TOML")


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _toml_char(c: str) -> str:
    # TOML basic strings allow tab but no other control character unescaped
    if c in _TOML_ESCAPES:
        return _TOML_ESCAPES[c]
    if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F:
        return f"\\u{ord(c):04X}"
    return c


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    # bare keys are ASCII letters, digits, _ and - only; anything else is quoted
    return k if _BARE_KEY.fullmatch(k) else _toml_value(k)


def dumps_toml(d: dict[str, Any], _prefix: str = "") -> str:
    """A small TOML writer for plain config dicts (None values are left out)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{_prefix}.{_key(k)}" if _prefix else _key(k)
        out += ("\n\n" if out else "") + f"[{name}]\n" + dumps_toml(v, name)
    return out.strip() + "\n"


_DEVICE = re.compile(r"(auto|cpu|cuda)(:\d+)?")


def available_devices() -> list[str]:
    """Devices torch can use on this machine: ``cpu``, and ``cuda``, ``cuda:0``, ... when CUDA is there."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return out


def check_device_name(device: str, *, where: str = "device") -> None:
    """Reject a device spelling genbench does not accept (``gpu``, ``cuda0``); no torch needed."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device) or device.startswith("auto:") \
            or device.startswith("cpu:"):
        close = difflib.get_close_matches(str(device), ["auto", "cpu", "cuda"], n=1, cutoff=0.3)
        hint = f" Did you mean: {close[0]}?" if close else ""
        if str(device).lower() in ("gpu", "nvidia", "cuda0"):
            hint = " Did you mean: cuda?"
        raise ConfigError(f"{where}: unknown device {device!r}.{hint} Accepted: auto, cpu, cuda or cuda:N.")


def check_device(device: str | None, *, where: str = "device") -> None:
    """Fail now, with what is available, if ``device`` is misspelt or not present on this machine.

    ``None`` and ``"auto"`` always pass (CUDA when available, else CPU).
    """
    if device is None:
        return
    check_device_name(device, where=where)
    if device == "auto":
        return
    avail = available_devices()
    if device.startswith("cuda") and device not in avail:
        why = "CUDA is not available on this machine" if avail == ["cpu"] else f"there is no {device} here"
        raise ConfigError(f"{where}: {device!r} was asked for but {why}. Available: auto, {', '.join(avail)}. "
                          "Use device 'auto' (CUDA when present, else CPU) or 'cpu', or run where CUDA is.")
