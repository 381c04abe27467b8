"""Shared pieces of the benchmark suites: peak-memory recording, the timed call, the large-case switch.

Every benchmark calls :func:`run_timed`: one pytest-benchmark ``pedantic`` call (the timed rounds)
inside a peak-memory probe, with ``extra_info`` holding ``suite``, ``case`` and ``impl`` so that
``benchmarks/summarize.py`` can put peers of one case side by side as ratios.

Memory is the **RSS high-water mark above the RSS before the call**, read from
``/proc/self/statm`` by a background thread every 2 ms (Linux). It covers numpy, BLAS and torch
allocations alike (``tracemalloc`` sees none of torch's), but it is a lower bound of what a call
allocates: memory freed and reused by the allocator between rounds, or pages the process already
held, do not show; and a spike shorter than 2 ms can be missed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

# torch and BLAS threads for every implementation alike. One by default: the bench machine has 2 cores
# shared with other jobs, and there an OpenMP team of 2 stalls whenever the other core is busy
# (measured: PixelCNN sampling 118 s with 2 threads vs 8 s with 1)
THREADS = int(os.environ.get("GENBENCH_BENCH_THREADS", "1"))
# cases that take minutes (e.g. k-NN at 10,000 x 60,000 x 784) run only with GENBENCH_BENCH_LARGE=1
LARGE = os.environ.get("GENBENCH_BENCH_LARGE", "") == "1"
large_only = pytest.mark.skipif(not LARGE, reason="large case: set GENBENCH_BENCH_LARGE=1 to run it")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MEMORY_METHOD = "rss-delta: /proc/self/statm high-water above the pre-call RSS, polled every 2 ms"


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


class PeakRSS:
    """Context manager: ``peak_mb`` is the RSS high-water above the RSS at entry, in MiB (None
    where /proc is missing)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_mb: float | None = None

    def __enter__(self) -> PeakRSS:
        self._base = _rss_bytes()
        self._peak = self._base or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        rss = _rss_bytes()
        if self._base is not None:
            self._peak = max(self._peak, rss or 0)
            self.peak_mb = (self._peak - self._base) / 2**20


def run_timed(benchmark: Any, fn: Callable[..., Any], *args: Any, suite: str, case: str, impl: str,
              rounds: int = 3, warmup_rounds: int = 0, **info: Any) -> Any:
    """Time ``fn(*args)`` with ``benchmark.pedantic`` and record the case and peak memory.

    Parameters
    ----------
    benchmark : the pytest-benchmark fixture.
    fn, args : the call to time (one call per round, no iterations).
    suite, case, impl : what ``summarize.py`` groups by: peers share ``suite`` and ``case``;
        ``impl == "genbench"`` (or starting with it) is ours, the ratio's denominator.
    rounds, warmup_rounds : passed to ``pedantic``.
    info : more ``extra_info`` (sizes, dtype, notes).

    Returns
    -------
    What ``fn`` returned on the last round, for correctness checks outside the timing.
    """
    benchmark.extra_info.update(suite=suite, case=case, impl=impl, torch_threads=torch.get_num_threads(),
                                cpu_count=os.cpu_count(), memory_method=MEMORY_METHOD, **info)
    with PeakRSS() as mem:
        out = benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    benchmark.extra_info["peak_rss_delta_mb"] = None if mem.peak_mb is None else round(mem.peak_mb, 1)
    return out
