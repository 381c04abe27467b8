"""Feature extractors: a registry, batched extraction with an on-disk cache, streaming statistics.

Extractors (``genbench ls extractors``):

- ``domain:<dataset>``: a small CNN genbench trains on the dataset's labelled train split and
  caches by content hash; default for built-in image datasets (its test accuracy is recorded).
- ``inception-v3-compat``: the TF "2015-12-05" InceptionV3 from a local weights file, torch-fidelity's
  ``.pth`` or the TorchScript pool3 port that ``genbench fetch inception`` installs.
- ``pixels``: the flattened input.

torch_fidelity is imported only when the Inception extractor is built.

Examples
--------
>>> import torch
>>> from genbench.features import extract, get_extractor
>>> out = extract(get_extractor("pixels"), torch.rand(10, 1, 8, 8))
>>> out["features"].shape, out["features"].dtype
((10, 64), dtype('float64'))
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from genbench._io import atomic_save_npz, hash_arrays, hash_text
from genbench._registry import Registry
from genbench.features._base import Extractor, cache_root
from genbench.features.stats import RunningStats

__all__ = [
    "EXTRACTORS", "Extractor", "RunningStats", "cache_root", "extract", "feature_cache_key", "get_extractor",
    "register_extractor",
]

EXTRACTORS: Registry[Any] = Registry("feature extractor")
register_extractor = EXTRACTORS.register

# bump when the cached file layout or the extraction itself changes
FEATURE_CACHE_VERSION = 1


@register_extractor("domain:", description="domain:<dataset> - small CNN trained by genbench on the dataset's "
                    "labelled train split, cached by content hash (penultimate features, softmax probs)")
def _domain(arg: str, *, device: Any = None, cache_dir: Any = None, weights: Any = None, seed: int = 0) -> Extractor:
    from genbench.features.domain import build_domain_classifier

    if weights is not None:
        raise ValueError("domain:<dataset> trains and caches its own weights; 'weights' is only for "
                         "inception-v3-compat. Use cache_dir to choose where the trained weights live.")
    return build_domain_classifier(arg, device=device, cache_dir=cache_dir, seed=seed)


@register_extractor("inception-v3-compat", description="TF 2015-12-05 InceptionV3 (2048-d pool3) from a local file: "
                    "torch-fidelity's .pth (also 1008-class probs, IS) or the TorchScript pool3 port from "
                    "`genbench fetch inception` (no IS); $GENBENCH_INCEPTION_WEIGHTS")
def _inception(arg: str | None = None, *, device: Any = None, cache_dir: Any = None, weights: Any = None,
               seed: int = 0) -> Extractor:
    from genbench.features.inception import InceptionV3Compat, resolve_weights

    return InceptionV3Compat(resolve_weights(weights, cache_dir), device=device)


@register_extractor("pixels", description="flattened inputs (any shape; the points themselves for 2-D mixtures)")
def _pixels(arg: str | None = None, *, device: Any = None, cache_dir: Any = None, weights: Any = None,
            seed: int = 0) -> Extractor:
    from genbench.features.pixels import Pixels

    if weights is not None:
        raise ValueError("the pixels extractor has no weights; 'weights' is only for inception-v3-compat.")
    return Pixels(device=device)


def get_extractor(name: str, *, device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None,
                  weights: str | os.PathLike | None = None, seed: int = 0) -> Extractor:
    """Build a feature extractor by name.

    Parameters
    ----------
    name : str
        ``domain:<dataset>``, ``inception-v3-compat`` or ``pixels`` (unknown names answer with
        suggestions).
    device : str, optional
        Where features are computed (default: CUDA when available, else CPU).
    cache_dir : path, optional
        Cache root for trained weights (else $GENBENCH_CACHE, else ~/.cache/genbench).
    weights : path, optional
        The Inception weights file (else $GENBENCH_INCEPTION_WEIGHTS, else under
        ``<cache>/weights/``: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``, then
        the TorchScript ``inception-2015-12-05-pool3-torchscript-a16e4d89.pt`` from ``genbench
        fetch inception``).
    seed : int
        Training seed of the domain classifier.

    Returns
    -------
    Extractor
        With ``id`` (including a weights hash), ``feature_dim``, ``has_probs``, ``features(x)``,
        ``probs(x)`` where available, and ``info`` (facts to record with results).
    """
    entry = EXTRACTORS.entry(name)
    if entry.name.endswith(":"):
        arg = name.split(":", 1)[1]
        if not arg:
            raise ValueError(f"{entry.name} needs a dataset name after the colon, e.g. {entry.name}digits")
    else:
        arg = None
    return entry.obj(arg, device=device, cache_dir=cache_dir, weights=weights, seed=seed)


def feature_cache_key(*, data_hash: str, split: str, extra: str = "") -> str:
    """The data part of a feature cache key: which data (content hash) and which split.

    :func:`extract` adds the extractor id (with its weights hash), its resize mode, the input's
    dtype and shape and the output dtype itself, so a key can never be reused across extractors.
    """
    return f"data={data_hash}/split={split}" + (f"/{extra}" if extra else "")


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"inputs must be numeric arrays; got dtype {a.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(a))


def _check_batch(xb: torch.Tensor, offset: int, n: int, images: bool) -> None:
    if xb.is_floating_point():
        bad = ~torch.isfinite(xb.reshape(len(xb), -1)).all(dim=1)
        if bool(bad.any()):
            first = offset + int(torch.nonzero(bad)[0])
            raise ValueError(
                f"inputs have NaN/Inf values (first in sample {first} of {n}); check the generator's output."
            )
        if images:
            out = (xb < -1e-6) | (xb > 1 + 1e-6)
            if bool(out.any()):
                first = offset + int(torch.nonzero(out.reshape(len(xb), -1).any(dim=1))[0])
                raise ValueError(
                    f"images must lie in [0, 1]; sample {first} of {n} has values in [{float(xb.min()):.4g}, "
                    f"{float(xb.max()):.4g}]. Rescale (e.g. uint8 images / 255, or (x + 1) / 2 for tanh outputs)."
                )


def extract(extractor: Extractor, x: Any, *, batch_size: int = 256, device: str | torch.device | None = None,
            cache_dir: str | os.PathLike | None = None, cache_key: str | bool | None = None) -> dict[str, Any]:
    """Features (and class probabilities) of many inputs, in batches, as float64 arrays.

    Parameters
    ----------
    extractor : Extractor
        From :func:`get_extractor`.
    x : Tensor or array (N, C, H, W) or (N, ...)
        Images in [0, 1] (float), or uint8 images 0..255 (divided by 255); any shape for ``pixels``.
    batch_size : int
        Inputs per forward pass (capped at the extractor's ``max_batch``); outputs do not depend
        on it beyond float32 rounding of the network, and memory stays bounded for any N.
    device : str, optional
        Move the extractor there first.
    cache_dir : path, optional
        Cache root for features (else $GENBENCH_CACHE, else ~/.cache/genbench).
    cache_key : str or True, optional
        Cache the outputs under this data key (e.g. :func:`feature_cache_key`); ``True`` hashes
        the content of ``x``. The file name also hashes the extractor id (weights hash included),
        its resize mode, the input dtype and shape and the output dtype. Written atomically.

    Returns
    -------
    dict
        ``features`` (N, d) float64; ``probs`` (N, classes) float64 when the extractor has a
        classifier head; ``extractor_id``; ``n``; ``cache_path`` (str or None); ``cached`` (bool).
    """
    from genbench._validation import check_positive_int

    batch_size = check_positive_int(batch_size, "batch_size")
    t = _as_tensor(x)
    if t.ndim < 2 or len(t) == 0:
        raise ValueError(f"inputs must have shape (N, ...) with N >= 1; got {tuple(t.shape)}.")
    if extractor.images_only and t.ndim != 4:
        raise ValueError(f"{extractor.id} takes images (N, C, H, W); got shape {tuple(t.shape)}. "
                         "Add a channel axis for grey images.")
    if extractor.images_only:
        extractor.check_input_shape(tuple(t.shape[1:]))
    if device is not None:
        extractor.to(device)
    n = len(t)

    path = None
    if cache_key is not None and cache_key is not False:
        data_key = hash_arrays(t) if cache_key is True else str(cache_key)
        material = {"data": data_key, "extractor": extractor.id, "resize": extractor.resize, "out_dtype": "float64",
                    "in_dtype": str(t.dtype), "shape": list(t.shape), "version": FEATURE_CACHE_VERSION}
        digest = hash_text(json.dumps(material, sort_keys=True))
        path = cache_root(cache_dir) / "features" / extractor.id / f"{digest}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if json.loads(str(z["meta"])) == material:
                        out = {"features": z["features"], "extractor_id": extractor.id, "n": n,
                               "cache_path": str(path), "cached": True}
                        if "probs" in z.files:
                            out["probs"] = z["probs"]
                        return out
            except Exception:  # unreadable or foreign cache file: recompute and overwrite it
                pass

    bs = min(batch_size, extractor.max_batch)
    feats: np.ndarray | None = None
    probs: np.ndarray | None = None
    for lo in range(0, n, bs):
        xb = t[lo:lo + bs]
        if xb.dtype == torch.uint8:
            xb = xb.float() / 255.0
        elif not xb.is_floating_point():
            xb = xb.double()  # integer points/pixels: exact in float64; networks cast to float32 themselves
        _check_batch(xb, lo, n, extractor.images_only)
        f, p = extractor.features_and_probs(xb)
        if feats is None:
            feats = np.empty((n, f.shape[1]), dtype=np.float64)
            probs = np.empty((n, p.shape[1]), dtype=np.float64) if p is not None else None
        feats[lo:lo + len(xb)] = f.detach().double().cpu().numpy()
        if probs is not None and p is not None:
            probs[lo:lo + len(xb)] = p.detach().double().cpu().numpy()
    assert feats is not None
    out = {"features": feats, "extractor_id": extractor.id, "n": n, "cache_path": str(path) if path else None,
           "cached": False}
    if probs is not None:
        out["probs"] = probs
    if path is not None:
        arrays = {"features": feats, "meta": np.array(json.dumps(material, sort_keys=True))}
        if probs is not None:
            arrays["probs"] = probs
        atomic_save_npz(path, **arrays)
    return out
