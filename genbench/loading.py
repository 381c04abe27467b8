"""Loading a user's generator from an untrusted file or an entry point: ``genbench.load_generator(spec)``.

A spec is one of:

- a ``torch.export`` program (``.pt2`` from ``torch.export.save``) or a TorchScript file that maps a
  latent batch (N, z_dim) to samples; the latent size and distribution come from flags or from the
  file's ``genbench.json`` metadata (``extra_files`` / ``_extra_files``);
- ``package.module:factory``: a callable returning an object with ``sample(n, *, seed)`` (and, when
  it has them, the likelihood protocols);
- a state dict (``.safetensors`` or ``.pt``) together with ``entry="module:factory"`` building the module;
- a genbench checkpoint (``best.pt`` / ``last.pt``) or a training / matrix run folder.

A checkpoint is untrusted input: files are read with ``torch.load(weights_only=True)``, safetensors,
TorchScript or a pre-checked ``torch.export`` archive; nothing that needs full unpickling is loaded
without ``trust_checkpoint=True``. The format is read from the file's content, and a content that
contradicts the file's name is an error.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import io
import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["LATENTS", "LoadError", "ProgramGenerator", "load_generator", "resolve_entry_point"]

LATENTS = ("normal", "uniform")
META_NAME = "genbench.json"
UNSAFE = ("{path}: this file can only be read by unpickling arbitrary Python objects ({why}). Unpickling runs "
          "whatever code the file's author put in it, so genbench refuses it by default. Save the weights with "
          "safetensors or as a plain state dict (torch.save(model.state_dict())), export the generator with "
          "torch.export, or, only for a file you made yourself or fully trust, pass --trust-checkpoint "
          "(trust_checkpoint=True).")


class LoadError(ValueError):
    """A generator spec that cannot be loaded (the message says why and what to do)."""


@dataclass
class Loaded:
    """A loaded generator and the facts recorded about where it came from."""

    generator: Any
    info: dict[str, Any] = field(default_factory=dict)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ProgramGenerator:
    """A module or program mapping latents (N, z_dim) to samples, used as a :class:`~genbench.protocols.Generator`.

    ``sample(n, seed=s)`` draws ``z`` from the latent distribution with a generator seeded by ``s``
    (``normal``: N(0, I); ``uniform``: U[-1, 1)), all at once on the CPU so that the samples do not
    depend on the batch size or the device, and runs the program in batches of ``batch`` (a program
    exported with a fixed batch size gets padded batches).
    """

    def __init__(self, fn: Any, *, z_dim: int, latent: str = "normal", batch: int | None = None,
                 device: Any = "cpu", fixed_batch: bool = False, what: str = "program") -> None:
        self.fn, self.z_dim, self.latent = fn, int(z_dim), latent
        self.batch, self.fixed_batch, self.device, self.what = batch, fixed_batch, torch.device(device), what

    def latents(self, n: int, *, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        if self.latent == "normal":
            return torch.randn(n, self.z_dim, generator=g)
        return torch.rand(n, self.z_dim, generator=g) * 2 - 1

    @torch.no_grad()
    def sample(self, n: int, *, seed: int) -> torch.Tensor:
        z = self.latents(n, seed=seed)
        step = self.batch or n
        out = []
        for lo in range(0, n, step):
            zb = z[lo:lo + step]
            m = len(zb)
            if self.fixed_batch and m < step:  # a program exported with a static batch size
                zb = torch.cat([zb, zb.new_zeros(step - m, self.z_dim)])
            try:
                y = self.fn(zb.to(self.device))
            except Exception as e:
                raise LoadError(f"the {self.what} failed on a latent batch of shape {tuple(zb.shape)} "
                                f"({type(e).__name__}: {e}); check --z-dim and that it maps (N, z_dim) latents to "
                                "samples.") from e
            out.append(_check_output(y, self.what)[:m].cpu())
        return torch.cat(out)


def _check_output(y: Any, what: str) -> torch.Tensor:
    if isinstance(y, tuple | list) and len(y) == 1:
        y = y[0]
    if not isinstance(y, torch.Tensor):
        raise LoadError(f"the {what} returned {type(y).__name__}; it must return one tensor of samples "
                        "(N, *data_shape).")
    if not y.is_floating_point():
        raise LoadError(f"the {what} returned samples of dtype {y.dtype}; expected a floating-point tensor with "
                        "values in the data's range ([0, 1] for images; divide uint8 images by 255 in the model).")
    return y


def check_sample_output(x: Any, n: int, shape: tuple[int, ...], what: str) -> None:
    """Type, dtype and shape of what ``sample(n, seed=)`` returned, with the expected values in the message."""
    x = _check_output(x, what)
    if tuple(x.shape) != (n, *shape):
        raise LoadError(f"the {what} returned samples of shape {tuple(x.shape)}, expected {(n, *shape)}; "
                        "sample(n, seed=) must return (n, *data_shape) (channels first for images).")


# ---------------------------------------------------------------- entry points

_ENTRY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_entry_point(spec: str) -> bool:
    return bool(_ENTRY.match(spec)) and not Path(spec).exists()


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def resolve_entry_point(spec: str) -> Any:
    """The object named by ``package.module:attr`` (``attr`` may be dotted); clear errors with suggestions."""
    import pkgutil

    if not _ENTRY.match(spec):
        raise LoadError(f"{spec!r} is not an entry point; write package.module:factory (a module path, a colon "
                        "and the factory's name).")
    mod_name, attr = spec.split(":", 1)
    try:
        obj = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        missing = e.name or mod_name
        if mod_name == missing or mod_name.startswith(missing + "."):
            parent, _, leaf = missing.rpartition(".")
            try:
                path = importlib.import_module(parent).__path__ if parent else None
                options = [m.name for m in pkgutil.iter_modules(path)]
            except Exception:  # noqa: BLE001 - suggestions are best effort
                options = []
            raise LoadError(f"entry point {spec!r}: no module named {missing!r}."
                            f"{_suggest(leaf, options)} Check the module path and that its package is "
                            "installed or on PYTHONPATH.") from e
        raise LoadError(f"entry point {spec!r}: importing {mod_name!r} failed because it imports {missing!r}, "
                        "which is not installed.") from e
    except Exception as e:
        raise LoadError(f"entry point {spec!r}: importing {mod_name!r} raised {type(e).__name__}: {e}") from e
    where = mod_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            options = [a for a in dir(obj) if not a.startswith("_")]
            raise LoadError(f"entry point {spec!r}: {where!r} has no attribute {part!r}.{_suggest(part, options)}")
        obj = getattr(obj, part)
        where = f"{where}.{part}"
    return obj


def _call_factory(spec: str, **kwargs: Any) -> Any:
    factory = resolve_entry_point(spec)
    if not callable(factory):
        return factory
    try:
        return factory(**kwargs)
    except Exception as e:
        raise LoadError(f"entry point {spec!r}: the factory raised {type(e).__name__}: {e}") from e


def _as_generator(obj: Any, what: str) -> Any:
    if callable(getattr(obj, "sample", None)):
        return obj
    raise LoadError(f"{what} gave a {type(obj).__name__}, which has no sample(n, *, seed) method; a generator "
                    "must implement genbench.protocols.Generator (or be a module mapping (N, z_dim) latents to "
                    "samples, given with --z-dim).")


# ---------------------------------------------------------------- file formats

def sniff(path: Path) -> str:
    """The file's format from its content: ``pt2``, ``torchscript``, ``torch-zip``, ``torch-legacy``,
    ``safetensors``, or ``unknown``."""
    with open(path, "rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                rel = {n.split("/", 1)[1] for n in names if "/" in n}
                if "archive_format" in rel:
                    root = names[0].split("/", 1)[0]
                    if z.read(f"{root}/archive_format").decode(errors="replace").strip() == "pt2":
                        return "pt2"
                if any(r.startswith("code/") for r in rel) and "constants.pkl" in rel:
                    return "torchscript"
                if "data.pkl" in rel:
                    return "torch-zip"
        except (zipfile.BadZipFile, OSError, KeyError):
            return "unknown"
        return "unknown"
    if head[:1] == b"\x80":
        return "torch-legacy"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


_NAMED = {".pt2": {"pt2"}, ".safetensors": {"safetensors"},
          ".pt": {"torchscript", "torch-zip", "torch-legacy"}, ".pth": {"torchscript", "torch-zip", "torch-legacy"},
          ".ckpt": {"torch-zip", "torch-legacy"}, ".bin": {"torch-zip", "torch-legacy"},
          ".ts": {"torchscript"}, ".jit": {"torchscript"}, ".torchscript": {"torchscript"}}
_DESCRIBE = {"pt2": "a torch.export archive", "torchscript": "a TorchScript archive",
             "torch-zip": "a torch.save file", "torch-legacy": "a legacy torch.save / pickle file",
             "safetensors": "a safetensors file", "unknown": "not a PyTorch, torch.export or safetensors file"}


def _check_name(path: Path, fmt: str) -> None:
    want = _NAMED.get(path.suffix.lower())
    if fmt == "unknown":
        raise LoadError(f"{path}: {_DESCRIBE[fmt]} (its first bytes match none of them); give a .pt2 from "
                        "torch.export.save, a TorchScript file, a .safetensors or .pt state dict, or a genbench "
                        "checkpoint.")
    if want is not None and fmt not in want:
        raise LoadError(f"{path}: the name says {path.suffix} but the file is {_DESCRIBE[fmt]}; rename it to what "
                        "it is (torch.export programs end in .pt2) or give the right file.")


def _meta(raw: Any, path: Path) -> dict[str, Any]:
    if raw in (None, "", b""):
        return {}
    try:
        d = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise LoadError(f"{path}: its {META_NAME} metadata is not valid JSON ({e}).") from e
    if not isinstance(d, dict):
        raise LoadError(f"{path}: its {META_NAME} metadata must be a JSON object, got {type(d).__name__}.")
    return d


def _latent_settings(meta: dict[str, Any], z_dim: int | None, latent: str | None, path: Any,
                     inferred_z: int | None = None) -> tuple[int, str]:
    if latent is not None and latent not in LATENTS:
        raise LoadError(f"--latent must be one of {', '.join(LATENTS)}, got {latent!r}.")
    mz, ml = meta.get("z_dim"), meta.get("latent")
    if z_dim is not None and mz is not None and int(mz) != int(z_dim):
        raise LoadError(f"{path}: --z-dim {z_dim} contradicts the file's metadata z_dim={mz}; drop the flag or fix "
                        "the file.")
    if latent is not None and ml is not None and ml != latent:
        raise LoadError(f"{path}: --latent {latent} contradicts the file's metadata latent={ml!r}; drop the flag or "
                        "fix the file.")
    z = z_dim if z_dim is not None else mz if mz is not None else inferred_z
    if z is None:
        raise LoadError(f"{path}: the latent size is unknown; pass --z-dim (or save the program with "
                        f"extra_files={{'{META_NAME}': json.dumps({{'z_dim': ..., 'latent': 'normal'}})}}).")
    if inferred_z is not None and int(z) != inferred_z:
        raise LoadError(f"{path}: z_dim={z} but the program takes latents of size {inferred_z}.")
    lat = latent or ml or "normal"
    if lat not in LATENTS:
        raise LoadError(f"{path}: metadata latent={lat!r} is not one of {', '.join(LATENTS)}.")
    return int(z), lat


def _weights_only_ok(data: bytes) -> bool:
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        return True
    except Exception:  # noqa: BLE001 - anything weights_only refuses is unsafe here
        return False


_PT2_ALLOWED = ("archive_format", "archive_version", "byteorder", ".data/", "models/", "data/weights/",
                "data/constants/", "data/sample_inputs/", "extra/")


def _check_pt2(path: Path) -> None:
    """Refuse archives that ``torch.export.load`` would read by unpickling or by loading compiled code.

    ``torch.export.load`` unpickles with ``weights_only=False`` the weights and constants marked
    ``use_pickle`` (tensor subclasses), unpickles custom and opaque objects, falls back to full
    unpickling for sample inputs that ``weights_only`` refuses, and loads AOTInductor shared libraries;
    a plain exported program needs none of these.
    """
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        root = names[0].split("/", 1)[0]
        rel = {n.split("/", 1)[1]: n for n in names if "/" in n}
        odd = sorted(r for r in rel if not r.startswith(_PT2_ALLOWED))
        if odd:
            raise LoadError(UNSAFE.format(path=path, why=f"it holds {odd[0]}, compiled or foreign payloads that "
                                          "torch.export.load would load"))
        for r, full in rel.items():
            if r.startswith(("data/weights/", "data/constants/")) and r.endswith("_config.json"):
                cfg = json.loads(z.read(full)).get("config", {})
                for key, meta in cfg.items():
                    name = meta.get("path_name", "")
                    pickled = meta.get("use_pickle") or (r.startswith("data/constants/")
                                                         and not name.startswith("tensor_"))
                    if pickled:
                        raise LoadError(UNSAFE.format(path=path, why=f"{key!r} is stored as a pickled object"))
            elif r.startswith(("data/weights/", "data/constants/")) and r.endswith(".pt"):
                raise LoadError(UNSAFE.format(path=path, why="it uses the legacy pickled weights layout"))
            elif r.startswith("data/sample_inputs/") and not _weights_only_ok(z.read(full)):
                raise LoadError(UNSAFE.format(path=path, why=f"{r} needs full unpickling"))
        if not any(r.startswith("models/") and r.endswith(".json") for r in rel):
            raise LoadError(f"{path}: a torch.export archive without a program (no {root}/models/*.json).")


def _program_input_shape(ep: Any) -> tuple[Any, ...] | None:
    try:
        user = set(ep.graph_signature.user_inputs)
        for node in ep.graph.nodes:
            if node.op == "placeholder" and node.name in user:
                return tuple(node.meta["val"].shape)
    except Exception:  # noqa: BLE001 - shape inference is a convenience
        return None
    return None


def _load_pt2(path: Path, *, z_dim: int | None, latent: str | None, device: Any) -> Loaded:
    _check_pt2(path)
    extra = {META_NAME: ""}
    try:
        ep = torch.export.load(str(path), extra_files=extra)
    except Exception as e:
        raise LoadError(f"{path}: torch.export.load failed ({type(e).__name__}: {e}).") from e
    meta = _meta(extra.get(META_NAME), path)
    shape = _program_input_shape(ep)
    inferred = int(shape[1]) if shape is not None and len(shape) == 2 and isinstance(shape[1], int) else None
    fixed = shape is not None and len(shape) >= 1 and isinstance(shape[0], int)
    z, lat = _latent_settings(meta, z_dim, latent, path, inferred)
    mod = ep.module()
    try:
        mod = mod.to(device)
    except Exception:  # noqa: BLE001 - some programs pin their device; they run where they were exported
        device = "cpu"
    gen = ProgramGenerator(mod, z_dim=z, latent=lat, device=device, batch=int(shape[0]) if fixed else 512,
                           fixed_batch=fixed, what=f"torch.export program {path.name}")
    return Loaded(gen, {"format": "torch.export", "z_dim": z, "latent": lat, "metadata": meta,
                        "batch": int(shape[0]) if fixed else None})


def _load_torchscript(path: Path, *, z_dim: int | None, latent: str | None, device: Any) -> Loaded:
    extra = {META_NAME: ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        try:
            mod = torch.jit.load(str(path), map_location=torch.device(device), _extra_files=extra)
        except Exception as e:
            raise LoadError(f"{path}: torch.jit.load failed ({type(e).__name__}: {e}).") from e
    mod.eval()
    meta = _meta(extra.get(META_NAME), path)
    z, lat = _latent_settings(meta, z_dim, latent, path)
    gen = ProgramGenerator(mod, z_dim=z, latent=lat, device=device, batch=512, what=f"TorchScript module {path.name}")
    return Loaded(gen, {"format": "torchscript", "z_dim": z, "latent": lat, "metadata": meta})


def _torch_load(path: Path, *, trust: bool) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            # torch names what it refused ("Unsupported global: GLOBAL pathlib.Path.touch ..."); say that much
            m = re.search(r"GLOBAL (\S+)", str(e))
            why = (f"it refers to the Python object {m.group(1)}, which is not a tensor or a plain container"
                   if m else "torch.load(weights_only=True) refused it")
            raise LoadError(UNSAFE.format(path=path, why=why)) from e
    except Exception as e:
        raise LoadError(f"{path}: cannot be read with torch.load(weights_only=True) ({type(e).__name__}: "
                        f"{e}).") from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(str(path), map_location="cpu", weights_only=False)


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # Lightning-style
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in obj.items()):
        return obj
    raise LoadError(f"{path}: expected a state dict (names -> tensors), got {type(obj).__name__}"
                    + (f" with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else "") + ".")


def _from_module(module: Any, what: str, *, z_dim: int | None, latent: str | None, meta: dict[str, Any],
                 device: Any) -> Loaded:
    if hasattr(module, "to"):
        module = module.to(device)
    if hasattr(module, "eval"):
        module.eval()
    if callable(getattr(module, "sample", None)):
        return Loaded(module, {"format": "module", "protocols": _protocols(module)})
    if not isinstance(module, torch.nn.Module):
        return Loaded(_as_generator(module, what))
    z, lat = _latent_settings(meta, z_dim, latent, what)
    return Loaded(ProgramGenerator(module, z_dim=z, latent=lat, device=device, batch=512, what=what),
                  {"format": "module", "z_dim": z, "latent": lat})


def _with_state(path: Path, fmt: str, *, entry: str | None, z_dim: int | None, latent: str | None,
                trust: bool, device: Any) -> Loaded:
    meta: dict[str, Any] = {}
    if fmt == "safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = _meta((f.metadata() or {}).get(META_NAME), path)
            state = load_file(str(path), device="cpu")
        except Exception as e:
            raise LoadError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}).") from e
    else:
        obj = _torch_load(path, trust=trust)
        if isinstance(obj, dict) and obj.get("format") == "genbench-checkpoint":
            from genbench.harness import load_model

            model = load_model(path, device=device)
            return Loaded(model, {"format": "genbench-checkpoint", "family": model.checkpoint.get("family"),
                                  "protocols": _protocols(model)})
        if not isinstance(obj, dict):  # a whole pickled object, loaded under --trust-checkpoint
            return _from_module(obj, f"{path}", z_dim=z_dim, latent=latent, meta={}, device=device)
        state = None if entry is None else _state_dict(obj, path)
    if entry is None:
        raise LoadError(f"{path}: a state dict holds weights but not the model; pass --entry module:factory "
                        "(a callable returning the torch.nn.Module to load them into).")
    module = _call_factory(entry)
    if not isinstance(module, torch.nn.Module):
        raise LoadError(f"entry point {entry!r} returned {type(module).__name__}; with a state dict it must "
                        "return a torch.nn.Module to load the weights into.")
    try:
        module.load_state_dict(state)
    except Exception as e:
        raise LoadError(f"{path}: the weights do not fit the module from {entry!r} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}).") from e
    out = _from_module(module, f"module from {entry!r}", z_dim=z_dim, latent=latent, meta=meta, device=device)
    out.info.update({"format": f"{fmt} state dict", "entry": entry})
    return out


def _protocols(obj: Any) -> list[str]:
    from genbench.protocols import LatentVariableModel, LikelihoodModel

    return [n for n, p in (("likelihood", LikelihoodModel), ("latent-variable", LatentVariableModel))
            if isinstance(obj, p)]


def load(spec: str | os.PathLike, *, z_dim: int | None = None, latent: str | None = None, entry: str | None = None,
         trust_checkpoint: bool = False, device: Any = "cpu") -> Loaded:
    """:func:`load_generator` with the facts about the source (format, file hash, latent settings)."""
    from genbench.harness import resolve_device

    device = resolve_device(device)
    s = os.fspath(spec)
    if isinstance(spec, str) and is_entry_point(s):
        if z_dim is not None or latent is not None or entry is not None:
            raise LoadError(f"{s!r} is an entry point returning a generator; --z-dim, --latent and --entry apply to "
                            "files only.")
        gen = _as_generator(_call_factory(s), f"entry point {s!r}")
        if hasattr(gen, "to") and isinstance(gen, torch.nn.Module):
            gen = gen.to(device).eval()
        return Loaded(gen, {"spec": s, "format": "entry-point", "protocols": _protocols(gen)})
    path = Path(s).expanduser()
    if not path.exists():
        hint = " (an entry point is written package.module:factory)" if ":" in s else ""
        raise LoadError(f"generator {s!r}: no such file or folder{hint}.")
    if path.is_dir():
        from genbench.harness import load_trained

        if not (path / "checkpoints").is_dir():
            raise LoadError(f"{path}: not a genbench run folder (no checkpoints/); give a run folder written by "
                            "`genbench train` or `genbench run`, or a checkpoint file.")
        try:
            model = load_trained(path, device=device)
        except (ValueError, FileNotFoundError) as e:
            raise LoadError(f"{path}: {e}") from e
        files = {str(p.relative_to(path)): sha256_of(p) for p in sorted((path / "checkpoints").glob("*.pt"))}
        return Loaded(model, {"spec": s, "format": "genbench-run", "family": model.checkpoint.get("family"),
                              "files": files, "protocols": _protocols(model)})
    fmt = sniff(path)
    _check_name(path, fmt)
    if fmt == "pt2":
        out = _load_pt2(path, z_dim=z_dim, latent=latent, device=device)
    elif fmt == "torchscript":
        out = _load_torchscript(path, z_dim=z_dim, latent=latent, device=device)
    else:
        out = _with_state(path, fmt, entry=entry, z_dim=z_dim, latent=latent, trust=trust_checkpoint, device=device)
    out.info = {"spec": s, **out.info, "files": {path.name: sha256_of(path)}}
    if trust_checkpoint:
        out.info["trusted"] = True
    return out


def load_generator(spec: str | os.PathLike, *, z_dim: int | None = None, latent: str | None = None,
                   entry: str | None = None, trust_checkpoint: bool = False, device: Any = "cpu") -> Any:
    """A :class:`~genbench.protocols.Generator` from a file, a run folder or an entry point.

    Parameters
    ----------
    spec : a ``.pt2`` torch.export program, a TorchScript file, a ``.safetensors`` / ``.pt`` state dict
        (with ``entry``), a genbench checkpoint or run folder, or ``package.module:factory``.
    z_dim, latent : the latent size and distribution (``normal`` N(0, I) or ``uniform`` U[-1, 1)) of a
        program or module mapping latents to samples; default from the file's ``genbench.json``
        metadata (a contradicting flag is an error) or, for torch.export, the program's input shape.
    entry : ``module:factory`` building the module a state dict is loaded into.
    trust_checkpoint : allow full unpickling of a ``.pt`` that ``weights_only`` refuses (runs the
        file's code: only for files you trust).
    device : where the model runs.

    Returns
    -------
    An object with ``sample(n, *, seed)``; a genbench model or an entry point's object keeps its
    likelihood protocols.

    Examples
    --------
    >>> gen = load_generator("generator.pt2")            # doctest: +SKIP
    >>> gen.sample(16, seed=0).shape                     # doctest: +SKIP
    torch.Size([16, 1, 8, 8])
    """
    return load(spec, z_dim=z_dim, latent=latent, entry=entry, trust_checkpoint=trust_checkpoint,
                device=device).generator
