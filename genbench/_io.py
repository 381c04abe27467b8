"""Atomic file writes and content hashing.

Every result, checkpoint and cache file is written to a temporary file in the same directory
and renamed into place, so a killed process never leaves a half-written file that looks whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def atomic_write(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``writer(fileobj)`` into a temp file, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp creates 0600; give the file the mode an ordinary write would (keep an existing
            # file's mode, else 0666 & ~umask), so results stay readable by the group / a web server
            os.chmod(tmp, _target_mode(path))
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _umask() -> int:
    try:  # Linux >= 4.7 reports it without changing it
        with open("/proc/self/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any) -> str:
    # allow_nan=False: a NaN must never be written as if it were a number
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    def w(f: BinaryIO) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        f.write(buf.getvalue())

    return atomic_write(path, w)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    def w(f: BinaryIO) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        f.write(buf.getvalue())

    return atomic_write(path, w)


def hash_arrays(*arrays: Any, extra: str = "") -> str:
    """sha256 (first 16 hex digits) over arrays' dtype, shape and bytes, plus an extra string."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def hash_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()[:16]


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
