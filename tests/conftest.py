import os

import pytest

# Keep the test suite quiet and offline-safe on 2 cores.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("GENBENCH_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _torch_threads():
    # One intra-op thread: these models are tiny, and with two threads an op stalls whenever
    # another process holds a core (measured 57 s vs 2 s for one PixelCNN sample on busy cores).
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def digits():
    from genbench.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_arrays(digits):
    """digits' train, val and test images as numpy arrays (N, 1, 8, 8)."""
    return digits.train.x.numpy(), digits.val.x.numpy(), digits.test.x.numpy()


@pytest.fixture(scope="session")
def ring():
    from genbench.data import load_dataset

    return load_dataset("mixture-ring")
