"""Every benchmark runs under one thread budget (see ``_bench.THREADS``)."""

from __future__ import annotations

import pytest
import torch
from _bench import THREADS


@pytest.fixture(autouse=True)
def _threads():
    # one thread budget for torch, MKL/OpenBLAS (numpy, scipy) and OpenMP (scikit-learn, faiss)
    prev = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
    else:
        with threadpool_limits(limits=THREADS):
            yield
    torch.set_num_threads(prev)
