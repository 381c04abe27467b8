"""What every feature extractor provides, and where caches live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genbench._runtime import resolve_device  # noqa: F401  (the one resolver, re-exported)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: the argument, else $GENBENCH_CACHE, else ~/.cache/genbench.

    genbench keeps one cache for everything derived from content (trained domain classifiers,
    extracted features, the default Inception weights location), shared by ``genbench run``,
    ``genbench score`` and every results directory, so a new results directory does not retrain
    the domain classifier. Files are keyed by content hash; removing the folder only costs time.
    An empty ``$GENBENCH_CACHE`` counts as unset.

    Examples
    --------
    >>> import os
    >>> os.environ["GENBENCH_CACHE"] = "/tmp/gb-cache"
    >>> str(cache_root())
    '/tmp/gb-cache'
    >>> str(cache_root("/elsewhere"))
    '/elsewhere'
    >>> del os.environ["GENBENCH_CACHE"]
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("GENBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genbench"


class Extractor:
    """Base of genbench's feature extractors (satisfies :class:`genbench.protocols.FeatureExtractor`).

    Attributes
    ----------
    id : str
        Name plus everything that changes the output (weights hash), e.g. ``domain-digits-1a2b3c4d``.
    feature_dim : int or None
        Width d of ``features`` (None for ``pixels`` until it has seen an input).
    has_probs : bool
        Whether ``probs`` is available (a classifier head).
    n_classes : int or None
        Width of ``probs``.
    input_shape : tuple or None
        The (C, H, W) the extractor accepts, or None for any shape.
    images_only : bool
        Whether inputs must be images (N, C, H, W) in [0, 1].
    resize : str
        How inputs are resized before the network (part of cache keys), ``"none"`` if not.
    max_batch : int
        The largest batch one forward pass takes (bounds memory; ``extract`` splits further).
    """

    id: str = ""
    feature_dim: int | None = None
    has_probs: bool = False
    n_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    images_only: bool = True
    resize: str = "none"
    max_batch: int = 1024
    device: torch.device = torch.device("cpu")

    @property
    def info(self) -> dict[str, Any]:
        """Facts recorded with every result that used this extractor."""
        return {"id": self.id}

    def _nets(self) -> list[torch.nn.Module]:
        """The torch modules to move with :meth:`to`."""
        return []

    def to(self, device: str | torch.device | None) -> Extractor:
        """Move the extractor to ``device`` (``None``/``"auto"``: CUDA when available)."""
        self.device = resolve_device(device)
        for m in self._nets():
            m.to(self.device)
        return self

    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One forward pass: features (N, d) and class probabilities (N, classes) or None."""
        raise NotImplementedError

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, d) of inputs x (N, C, H, W) in [0, 1]."""
        return self.features_and_probs(x)[0]

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes), float64, of inputs x (N, C, H, W) in [0, 1]."""
        if not self.has_probs:
            raise ValueError(f"Feature extractor {self.id!r} has no classifier head, so no class probabilities "
                             "(needed for the Inception Score); use domain:<dataset> or inception-v3-compat.")
        p = self.features_and_probs(x)[1]
        assert p is not None
        return p

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        if self.input_shape is not None and tuple(shape) != tuple(self.input_shape):
            raise ValueError(
                f"Feature extractor {self.id!r} takes images of shape {tuple(self.input_shape)} (C, H, W); got "
                f"{tuple(shape)}. Score samples against the dataset they imitate, or use an extractor for this shape."
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} d={self.feature_dim}>"
