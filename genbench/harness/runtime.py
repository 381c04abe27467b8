"""Device choice and the progress bar."""

from __future__ import annotations

from typing import Any

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` / None: CUDA when available, else CPU; ``"cuda"`` without CUDA is an error."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(device)!r} was asked for but CUDA is not available; use device='auto' or 'cpu'."
        )
    return dev


def progress_bar(*, total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, leave=True)


def format_losses(losses: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.4g}" for k, v in losses.items()}
