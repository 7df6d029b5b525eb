"""Which memory level serves an access: the cache rules of the cost model
(``simulator.costmodel`` docstring, "Where an op's bytes come from")."""

from __future__ import annotations

from collections.abc import Iterable

from workloads.op import Op


def cache_levels(device) -> list[tuple[int, float]]:
    """(index, capacity) of the device's cache levels that keep data between ops, nearest first.

    Hierarchy order, not capacity order: on a server CPU the per-core L2s together can
    hold more than the shared L3, and a working set that fits them is served by L2.
    """
    return [(i, lv.capacity.value) for i, lv in enumerate(device.memory[:-1]) if lv.persistent.value]


def serving_level(levels: list[tuple[int, float]], main: int, working_set: float, fresh: bool) -> int:
    """THE cache rule: index of the memory level that serves one activation access.

    A fresh tensor (just produced, not yet evicted) in an op whose cache working set
    fits in the cache is served by the nearest persistent cache level that holds the
    whole working set; everything else comes from main memory (``main``).
    """
    if fresh:
        for i, cap in levels:
            if working_set <= cap:
                return i
    return main


def residency(ops: Iterable[Op], llc_bytes: float) -> dict[int, frozenset[str]]:
    """op id -> ids of the tensors it reads that are still in the last-level cache.

    Stack-distance rule: a tensor written by an earlier op is resident if the bytes moved
    by the ops in between (on the same device) fit in the LLC, and that write covered at
    least the bytes now read (appending one token to a KV cache does not bring the whole
    cache in). A tensor no op in the graph writes (weights, inputs) is resident only if
    the whole graph's traffic fits in the LLC, i.e. the step replays warm, as a benchmark
    loop does. Views move no bytes and their outputs alias their first input.
    """
    ops = list(ops)
    total: dict[int, float] = {}
    for op in ops:
        if op.kind != "view":
            total[op.device] = total.get(op.device, 0.0) + op.bytes
    cum: dict[int, float] = {}
    written: dict[tuple[int, str], tuple[float, float]] = {}
    out: dict[int, frozenset[str]] = {}
    for op in ops:
        dv = op.device
        now = cum.get(dv, 0.0)
        warm = total.get(dv, 0.0) <= llc_bytes
        res = set()
        for a in op.reads:
            w = written.get((dv, a.tensor))
            if w is None:
                if warm:
                    res.add(a.tensor)
            elif now - w[0] <= llc_bytes and a.bytes <= w[1]:
                res.add(a.tensor)
        out[op.id] = frozenset(res)
        if op.kind == "view":
            src = written.get((dv, op.reads[0].tensor)) if op.reads else None
            if src is not None:
                for a in op.writes:
                    written[(dv, a.tensor)] = (src[0], max(src[1], a.bytes))
            continue
        now += op.bytes
        cum[dv] = now
        for a in op.writes:
            written[(dv, a.tensor)] = (now, a.bytes)
    return out
