"""Busy time of a set of intervals, defined once for the engine's totals
(``simulator``) and the report's idle share (``reports``).

It sits in the lowest layer because it is the one package both may import; it knows
nothing of hardware.
"""

from __future__ import annotations

import numpy as np


def union_length(start, end) -> float:
    """Length of the union of [start, end) intervals: time at least one of them was busy.
    Empty and reversed intervals count nothing."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    keep = end > start
    if not keep.any():
        return 0.0
    s, e = start[keep], end[keep]
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    reach = np.maximum.accumulate(e)
    prev = np.concatenate(([-np.inf], reach[:-1]))
    seg_start = np.maximum(s, prev)
    return float(np.sum(np.maximum(e - seg_start, 0.0)))
