"""``pixels``: the flattened input itself, for point datasets and as a baseline feature space."""

from __future__ import annotations

import torch

from genbench.features._base import Extractor, resolve_device


class Pixels(Extractor):
    """Flattened inputs (N, ...) -> (N, prod(...)); no classifier head, any input shape.

    Distances in pixel space only catch near-copies (Theis et al. 2016), but for the 2-D
    synthetic mixtures the points are the right features.
    """

    id = "pixels"
    has_probs = False
    images_only = False
    max_batch = 4096

    def __init__(self, device: str | torch.device | None = None):
        self.device = resolve_device(device)
        self.feature_dim: int | None = None

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        f = x.reshape(len(x), -1)
        self.feature_dim = f.shape[1]
        return f, None
