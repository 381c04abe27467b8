"""Device choice and the progress bar."""

from __future__ import annotations

from typing import Any

from genbench._runtime import resolve_device  # noqa: F401  (the one resolver, re-exported)


def progress_bar(*, total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, leave=True)


def format_losses(losses: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.4g}" for k, v in losses.items()}
