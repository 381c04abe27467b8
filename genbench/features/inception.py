"""``inception-v3-compat``: torch-fidelity's TF-compatible InceptionV3 from a local weights file.

The network reproduces TensorFlow's "2015-12-05" Inception used by the original IS/FID code:
2048-d pool3 features, 1008 logits, bilinear resize to 299x299 emulating TF1, and
``(x - 128) / 128`` on 0..255 values (all inside torch-fidelity's module). Weights are never
downloaded here: the user gives the file (argument, config, or $GENBENCH_INCEPTION_WEIGHTS), and a
missing file is an error that says which file and where it goes. torch_fidelity is imported only
when this extractor is built.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from genbench.features._base import Extractor, cache_root, resolve_device

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE
ENV_VAR = "GENBENCH_INCEPTION_WEIGHTS"


class InceptionWeightsNotFound(FileNotFoundError, ValueError):
    """The Inception weights file is missing (the message says which file and where it goes)."""


def resolve_weights(weights: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The weights file: ``weights``, else $GENBENCH_INCEPTION_WEIGHTS, else ``<cache>/weights/<file>``."""
    default = cache_root(cache_dir) / "weights" / WEIGHTS_FILE
    for source, cand in (("weights argument", weights), (f"${ENV_VAR}", os.environ.get(ENV_VAR))):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise InceptionWeightsNotFound(
                    f"Inception weights file not found: {p} (from the {source}). It should be torch-fidelity's "
                    f"{WEIGHTS_FILE}; nothing is downloaded at run time. Get it on a machine with internet from "
                    f"{WEIGHTS_URL} and pass its path, set {ENV_VAR}=PATH, or put it at {default}."
                )
            return p
    if default.is_file():
        return default
    raise InceptionWeightsNotFound(
        f"inception-v3-compat needs torch-fidelity's weights file {WEIGHTS_FILE} and none was given; nothing is "
        f"downloaded at run time. Get it on a machine with internet from {WEIGHTS_URL}, then pass weights=PATH "
        f"(CLI/config: the extractor's weights), set {ENV_VAR}=PATH, or put it at {default}."
    )


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> uint8 0..255 by rounding to nearest (x * 255 of a uint8 image round-trips)."""
    return (x.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class InceptionV3Compat(Extractor):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (2048-d pool3 features, 1008-class probs).

    Inputs are images (N, C, H, W) in [0, 1] with C = 1 or 3: grey images are tiled to three
    channels, values are rounded to uint8 0..255 (what torch-fidelity takes: its own image loaders
    give uint8) and the network resizes to 299x299 with its TF1-compatible bilinear interpolation.
    Probabilities are the softmax over all 1008 logits computed from pool3 @ W_fc without the fc
    bias (``logits_unbiased``), as the original IS code does.
    """

    feature_dim = 2048
    n_classes = 1008
    has_probs = True
    resize = "tf1-bilinear-299"
    # 299x299 activations: ~30 MB per image in float32; 32 keeps one forward pass near 1 GB
    max_batch = 32

    def __init__(self, weights: str | os.PathLike, device: str | torch.device | None = None):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = Path(weights)
        data = path.read_bytes()
        self.weights_path = path
        self.weights_hash = hashlib.sha256(data).hexdigest()[:16]  # = genbench._io.hash_file(path)
        try:
            # weights_only=True refuses pickled code; the same bytes are then handed to torch-fidelity,
            # whose own torch.load uses weights_only=False, so that load can only see what passed here
            sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise ValueError("not a state dict of tensors")
            del sd
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=io.BytesIO(data),
            )
        except Exception as e:
            raise ValueError(
                f"{path}: not torch-fidelity's InceptionV3 weights ({type(e).__name__}: {str(e)[:300]}); expected "
                f"{WEIGHTS_FILE} from {WEIGHTS_URL}."
            ) from e
        self.device = resolve_device(device)
        self.net.to(self.device)
        self.id = f"inception-v3-compat-{self.weights_hash[:8]}"

    @property
    def info(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "inception-v3-compat (torch-fidelity)", "weights": str(self.weights_path),
                "weights_hash": self.weights_hash, "resize": self.resize}

    def _nets(self) -> list[torch.nn.Module]:
        return [self.net]

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"inception-v3-compat takes images (N, 1 or 3, H, W); got shape {tuple(x.shape)}.")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey tiled to RGB, the convention for MNIST-like data
        u8 = x if x.dtype == torch.uint8 else to_uint8(x)
        feats, logits = self.net(u8.to(self.device))
        return feats, torch.softmax(logits.double(), dim=1)
