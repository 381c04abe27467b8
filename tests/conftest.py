import os

import pytest

# Keep the test suite quiet and offline-safe on 2 cores.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("GENBENCH_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(2)
    yield
