"""Pipeline stages of ``simulator.scaleout``: the split of decoder layers that minimises
the slowest stage, each stage's graph, the GPipe schedule of micro-batches through them,
and what one device of each stage holds in memory."""

from __future__ import annotations

import math

import numpy as np

from workloads.payloads import payload

from .layout import ScaleOutError


def balance(times: list[float], stages: int, head: float = 0.0, tail: float = 0.0) -> list[int]:
    """First layer index of each of ``stages`` contiguous stages over ``times`` (per layer)
    that minimises the slowest stage; ``head``/``tail`` ride with the first/last stage."""
    n = len(times)
    if stages > n:
        raise ScaleOutError(f"--pp {stages} exceeds the {n} layers of the model; allowed: 1..{n}")
    pre = np.concatenate(([0.0], np.cumsum(times)))

    def cost(i: int, j: int, first: bool, last: bool) -> float:
        return float(pre[j] - pre[i]) + (head if first else 0.0) + (tail if last else 0.0)

    inf = math.inf
    # best[k][j]: the slowest of k stages over layers [0, j)
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for k in range(1, stages + 1):
        for j in range(k, n - (stages - k) + 1):
            for i in range(k - 1, j):
                if best[k - 1][i] == inf:
                    continue
                v = max(best[k - 1][i], cost(i, j, k == 1, k == stages))
                if v < best[k][j] - 1e-15:
                    best[k][j], cut[k][j] = v, i
    starts, j = [], n
    for k in range(stages, 0, -1):
        i = cut[k][j]
        starts.append(i)
        j = i
    return starts[::-1]


def stage_graphs(graph, where: list[int | None], starts: list[int], layers: int):
    """One graph per stage: its layers' ops, ops before the layers in the first stage and
    after them in the last."""
    from workloads.graph import WorkloadGraph

    bounds = [*starts, layers]
    seen_layer = False
    owner = []
    for L in where:
        if L is None:
            owner.append(0 if not seen_layer else len(starts) - 1)
            continue
        seen_layer = True
        owner.append(int(np.searchsorted(bounds, L, side="right")) - 1)
    out = []
    for s in range(len(starts)):
        g = WorkloadGraph(meta={**graph.meta, "stage": s, "layers": (bounds[s], bounds[s + 1])})
        nid = 0
        for op, o in zip(graph.ops, owner, strict=True):
            if o == s:
                g.add(_renumbered(op, nid))
                nid += 1
        out.append(g)
    return out


def _renumbered(op, nid: int):
    from dataclasses import replace

    return replace(op, id=nid, attrs=dict(op.attrs))


def schedule(stage_s: list[float], send_s: list[float], microbatches: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) [stage, micro-batch] of a GPipe-order forward: stage ``s`` runs
    micro-batch ``m`` after ``m - 1`` and after ``m`` arrives from ``s - 1``."""
    S, M = len(stage_s), int(microbatches)
    start = np.zeros((S, M))
    end = np.zeros((S, M))
    for s in range(S):
        for m in range(M):
            ready = end[s, m - 1] if m else 0.0
            if s:
                ready = max(ready, end[s - 1, m] + send_s[s - 1])
            start[s, m] = ready
            end[s, m] = ready + stage_s[s]
    return start, end


def bubble_fraction(stages: int, microbatches: int) -> float:
    """Idle share of a GPipe step of equal stages with free sends: (S-1)/(M+S-1)."""
    return (stages - 1) / (microbatches + stages - 1)


def resident_weight_bytes(graph) -> float:
    """Weights a device holds for ``graph``'s ops: each weight tensor's largest access, a
    MoE op's expert weights scaled from the experts it expects to touch to all it holds,
    and a gathered embedding at its full table size."""
    best: dict[str, float] = {}
    cfg = graph.meta.get("config") or {}
    for op in graph.ops:
        moe = payload(op) if op.kind == "moe" else None
        for acc in op.reads:
            if acc.role != "weight":
                continue
            b = float(acc.bytes)
            if moe is not None and "experts" in acc.tensor and moe.expected_experts:
                # an EP shard's experts (expert_parallel) are no Moe field
                held = float(op.attrs.get("local_experts") or moe.num_experts)
                b *= held / float(moe.expected_experts)
            elif op.kind == "gather" and cfg.get("vocab") and cfg.get("hidden") and "embed" in acc.tensor:
                rows = max(1.0, b / (cfg["hidden"] * _elem_of(op)))
                b *= cfg["vocab"] / rows
            if b > best.get(acc.tensor, 0.0):
                best[acc.tensor] = b
    return float(sum(best.values()))


def _elem_of(op) -> float:
    w = next((x for x in op.writes), None)
    r = next((x for x in op.reads if x.role == "weight"), None)
    if w is None or r is None or not op.shapes:
        return 2.0
    n = float(np.prod(op.shapes[-1])) if op.shapes[-1] else 0.0
    return max(1.0, w.bytes / n) if n else 2.0


def stage_memory(stages, graph, tp: int, layers: int) -> list[dict[str, float]]:
    """Per stage: weights, KV cache and peak activation bytes of one device."""
    from .footprint import kv_bytes, peak_activation_bytes

    kv_all, _ = kv_bytes(graph, 1)
    kv_all /= tp if tp > 1 else 1
    # a cache the graph holds in fewer heads than tp (MLA's latent, replicated) is per device
    kv_graph = _kv_graph(graph)
    if kv_graph and (kv_all == 0 or kv_graph < 0.5 * kv_all or graph.meta.get("config", {}).get("num_experts")):
        kv_all = kv_graph
    out = []
    for g in stages:
        lo, hi = g.meta["layers"]
        out.append({"weights": resident_weight_bytes(g), "kv_cache": kv_all * (hi - lo) / layers,
                    "activations": float(peak_activation_bytes(g))})
    return out


def _kv_graph(graph) -> float:
    best: dict[str, float] = {}
    for op in graph.ops:
        for acc in op.writes + op.reads:
            if acc.role == "kv_cache" and acc.bytes > best.get(acc.tensor, 0.0):
                best[acc.tensor] = float(acc.bytes)
    return float(sum(best.values()))
