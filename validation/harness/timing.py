"""Honest timing: warm-up, synchronisation (CUDA events on a GPU), repeats, medians with spread.

A repeat times ``inner`` back-to-back calls so that one timer read is small beside the
work; cold runs (``flush=True``) time one call each after evicting the caches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    inner: int

    def as_row(self) -> dict[str, float]:
        return {
            "median_s": self.median_s,
            "p10_s": self.p10_s,
            "p90_s": self.p90_s,
            "repeats": self.repeats,
            "inner": self.inner,
        }


class CacheFlusher:
    """Evicts the CPU caches (or the GPU L2) by streaming through a buffer larger than them."""

    def __init__(self, device: str, nbytes: int) -> None:
        self.buf = torch.empty(max(nbytes // 4, 1), dtype=torch.float32, device=device)
        self.buf.uniform_()

    def __call__(self) -> None:
        self.buf.add_(1.0)


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def measure(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    device: str,
    *,
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 2e-3,
    max_inner: int = 10_000,
    flush: CacheFlusher | None = None,
) -> Timing:
    sync = _sync(device)
    for _ in range(warmup):
        fn(*args)
    sync()
    t0 = time.perf_counter()
    fn(*args)
    sync()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = 1 if flush is not None else int(min(max_inner, max(1, min_repeat_s / once)))
    cuda = device.startswith("cuda")
    samples = []
    for _ in range(repeats):
        if flush is not None:
            flush()
            sync()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn(*args)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                fn(*args)
            samples.append((time.perf_counter() - t0) / inner)
    s = np.asarray(samples)
    return Timing(
        median_s=float(np.median(s)),
        p10_s=float(np.percentile(s, 10)),
        p90_s=float(np.percentile(s, 90)),
        repeats=len(samples),
        inner=inner,
    )
