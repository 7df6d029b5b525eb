"""Honest timing: warm-up, synchronisation (CUDA events on a GPU), repeats, medians with spread.

A repeat times ``inner`` back-to-back calls so that one timer read is small beside the
work; cold runs (``flush=True``) time one call each after evicting the caches.

On shared, noisy machines (as pyperf does): every row reports its spread, ``(p90 -
p10) / median`` of its samples. A case whose spread exceeds ``NOISY_SPREAD`` is measured
again, up to ``EXTRA_ROUNDS`` more rounds, pooling all samples; if it is still above, the
row is flagged ``noisy`` (calibration leaves it out of the fit; validation reports it).
The statistic everywhere is the median of the pooled samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: a row whose (p90 - p10) / median is above this is measured again, then flagged
NOISY_SPREAD = 0.25
#: extra measuring rounds a noisy case gets
EXTRA_ROUNDS = 2


#: what a timing adds to a measured row (``validation.harness.store`` columns)
ROW_FIELDS = ("median_s", "p10_s", "p90_s", "repeats", "inner", "spread", "noisy")


@dataclass
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    inner: int
    rounds: int = 1

    @property
    def spread(self) -> float:
        return (self.p90_s - self.p10_s) / self.median_s if self.median_s > 0 else float("inf")

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD

    def as_row(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ROW_FIELDS}


def _summary(samples: list[float], inner: int, rounds: int) -> Timing:
    s = np.asarray(samples)
    return Timing(median_s=float(np.median(s)), p10_s=float(np.percentile(s, 10)),
                  p90_s=float(np.percentile(s, 90)), repeats=len(samples), inner=inner, rounds=rounds)


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
    samples = _samples(fn, args, device, sync, repeats, inner, flush)
    t = _summary(samples, inner, 1)
    while t.noisy and t.rounds <= EXTRA_ROUNDS:
        samples += _samples(fn, args, device, sync, repeats, inner, flush)
        t = _summary(samples, inner, t.rounds + 1)
    return t


def _samples(fn, args, device: str, sync, repeats: int, inner: int, flush) -> list[float]:
    """``repeats`` timings of ``inner`` back-to-back calls each, seconds per call."""
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
    return samples
