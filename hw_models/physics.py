"""Small pure functions that turn bytes, FLOPs and updates into seconds.

Numbers in, seconds out: no spec objects, no graphs. Rates come from
``simulator.params.Params`` (a spec's peaks and efficiency curves, or a calibration's
parameter vector), so the cost model and the fit evaluate the very same formulas.
Most functions take numpy arrays as well as floats.

Models, in one line each (details on each function):

* rate curve:  a rate interpolated linearly in log10(size) between knots, flat outside
* memory:      ``bytes / rate(bytes)``
* matrix ops:  the library picks the output tile that finishes first; a tile costs
  ``max(tile FLOPs / per-unit FLOP rate, operand bytes / per-unit operand bandwidth)``
  and a GEMM runs ``waves`` rounds of tiles over the compute units (tile and wave
  quantisation, padding of skinny M; split-K fills the units when tiles are few)
* overlap:     an op's body is the p-norm of its compute and memory times
* atomics:     ``max(updates / update_rate, updates_per_target / same_address_rate)``
* links:       bulk DMA pays latency per transfer; cache-line access rounds each access up
  to the line size and keeps ``outstanding`` lines in flight (Little's law)
* PIM:         ``mode_switch + passes x max(bytes / internal_bw, flops / peak)``, one pass
  over the bank rows per input vector
* collectives: ``steps x latency + traffic x bytes / rate(bytes)`` for each algorithm of
  the registry (``ALGORITHMS``: ring, tree, one-shot; ``register_algorithm`` adds one);
  the fastest is taken, as NCCL's tuner and custom all-reduce do
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class PhysicsError(ValueError):
    """A request the physics cannot answer (e.g. an unknown collective)."""

    user_facing = True


# -- rate curves --------------------------------------------------------------------------


def log_size(size):
    """log10 of a work size, with sizes below 1 read as 1 (the curves start there)."""
    return np.log10(np.maximum(np.asarray(size, dtype=float), 1.0))


def curve_rate(xs: np.ndarray, rates: np.ndarray, size):
    """A rate at ``size``: linear in log10(size) between knots ``xs`` (log10), flat outside."""
    if len(xs) == 1:
        return np.full(np.shape(size), rates[0], dtype=float) if np.ndim(size) else float(rates[0])
    out = np.interp(log_size(size), xs, rates)
    return float(out) if np.ndim(out) == 0 else out


# -- compute ------------------------------------------------------------------------------


def gemm_tiles(m: int, n: int, k: int, batch: int, compute_units: int, shapes, split_k: bool,
               elem_bytes: float, b_elem_bytes: float | None = None) -> list[tuple[float, float]]:
    """Per candidate tile shape: (padded FLOPs, operand bytes) of a GEMM run with it.

    ``tiles = ceil(m/tm) ceil(n/tn) batch`` output tiles run in ``waves =
    ceil(tiles / units)`` rounds (with ``split_k`` and fewer tiles than units, K is
    split so the units share the work: ``tiles / units`` of a round). Every round
    occupies every unit for one tile's time, so the padded work is ``waves x units x 2
    tm tn k`` and the operand traffic ``waves x units x (tm elem_bytes + tn b_elem_bytes)
    k``: each tile streams an ``tm x k`` and a ``k x tn`` panel (``b_elem_bytes``, default
    ``elem_bytes``: the second operand's bytes per element, fewer for packed quantised
    weights). Tiles taller than ``m`` pad skinny GEMMs (decode rows), which is why
    libraries keep small tiles for them.
    """
    out = []
    units = max(int(compute_units), 1)
    b_bytes = elem_bytes if b_elem_bytes is None else b_elem_bytes
    for tm, tn in shapes:
        tiles = math.ceil(m / tm) * math.ceil(n / tn) * max(int(batch), 1)
        waves = tiles / units if (split_k and tiles < units) else math.ceil(tiles / units)
        out.append((waves * units * 2.0 * tm * tn * k, waves * units * (tm * elem_bytes + tn * b_bytes) * k))
    return out


def tile_time(work, flop_rate, operand_bytes, operand_rate):
    """Seconds for one tile alternative: the slower of its math and its operand streaming."""
    t = np.asarray(work, dtype=float) / flop_rate
    if operand_rate is None:
        return t
    return np.maximum(t, np.asarray(operand_bytes, dtype=float) / operand_rate)


def overlap(compute, memory, p: float):
    """An op's body time from its compute and memory times: ``(c^p + m^p)^(1/p)``.

    Perfect overlap is the max (large ``p``); streams that stall each other sum
    (``p = 1``). Never below the max, so a simulated op is never faster than its roofline.
    """
    c = np.asarray(compute, dtype=float)
    m = np.asarray(memory, dtype=float)
    hi = np.maximum(c, m)
    if p >= 64:
        return hi
    lo = np.minimum(c, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = hi * (1.0 + np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 0.0) ** p) ** (1.0 / p)
    return out


# -- atomics ------------------------------------------------------------------------------


def atomic_time(updates, per_target, update_rate, same_address_rate):
    """Seconds for atomic accumulates: distinct addresses proceed in parallel up to
    ``update_rate``; the ``per_target`` updates to the hottest address serialise."""
    updates = np.asarray(updates, dtype=float)
    return np.where(updates > 0, np.maximum(updates / update_rate, np.asarray(per_target) / same_address_rate), 0.0)


def updates_per_target(updates: float, distinct_targets: float) -> float:
    """Updates landing on the hottest target of an even spread; ``distinct <= 0`` means
    unknown and is taken as all distinct (no collisions), the optimistic end."""
    if updates <= 0:
        return 0.0
    targets = distinct_targets if distinct_targets > 0 else updates
    return updates / min(targets, updates)


# -- links --------------------------------------------------------------------------------


def link_wire_bytes(nbytes: float, cacheline: bool, line: float, n_accesses: int = 1) -> float:
    """Bytes that cross a link: cache-line links round each access up to whole lines."""
    if nbytes <= 0:
        return 0.0
    if not cacheline:
        return float(nbytes)
    n = max(int(n_accesses), 1)
    return n * math.ceil((nbytes / n) / line) * line


def cacheline_rate(rate, outstanding: float, line: float, latency: float):
    """A load/store link's sustained rate: at most ``outstanding`` lines per round trip."""
    if latency <= 0:
        return rate
    return np.minimum(rate, outstanding * line / latency)


# -- processing in memory -----------------------------------------------------------------


def pim_time(passes, bytes_per_pass, flops_per_pass, internal_bandwidth, peak, mode_switch):
    """Seconds for a GEMV-like op on the bank units: one pass over the weight rows per
    input vector, each bound by the banks' bandwidth or the units' FLOPs, plus the
    host <-> PIM mode switch of the call."""
    passes = np.asarray(passes, dtype=float)
    body = passes * np.maximum(np.asarray(bytes_per_pass) / internal_bandwidth,
                               np.asarray(flops_per_pass) / peak)
    return np.where(passes > 0, mode_switch + body, 0.0)


# -- collectives --------------------------------------------------------------------------

#: ring algorithms: (fraction of the message each rank sends, latency steps), as functions of n
_RING = {
    "all_reduce": (lambda n: 2.0 * (n - 1) / n, lambda n: 2 * (n - 1)),
    "all_gather": (lambda n: (n - 1) / n, lambda n: n - 1),
    "reduce_scatter": (lambda n: (n - 1) / n, lambda n: n - 1),
    "all_to_all": (lambda n: (n - 1) / n, lambda n: n - 1),
    # pipelined ring broadcast: every byte crosses each hop once, steps fill the pipe
    "broadcast": (lambda n: 1.0, lambda n: n - 1),
    # point to point (pipeline stages): the message crosses once
    "send_recv": (lambda n: 1.0, lambda n: 1),
}

def collective_kind(kind: str) -> str:
    k = kind.lower().replace("-", "_").split("::")[-1].strip("_")
    k = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
         "alltoall": "all_to_all", "all_gather_into_tensor": "all_gather",
         "reduce_scatter_tensor": "reduce_scatter", "sendrecv": "send_recv", "send": "send_recv",
         "recv": "send_recv"}.get(k, k)
    if k not in _RING:
        raise PhysicsError(f"unknown collective {kind!r}; known: {', '.join(_RING)}")
    return k


@dataclass(frozen=True)
class Algorithm:
    """A collective algorithm: ``terms(kind, n)`` gives (bytes on the wire per byte of
    message, latency steps) for a collective ``kind`` over ``n > 1`` ranks, or None where
    the algorithm does not apply to that kind."""

    name: str
    terms: Callable[[str, int], tuple[float, int] | None]
    #: the cost model tries it on every collective; an algorithm that needs an engine's own
    #: kernel (``one_shot``) is tried only where the op says that kernel runs
    always: bool = True


#: the registry of collective algorithms, by name; ``register_algorithm`` adds one
ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> None:
    ALGORITHMS[algorithm.name] = algorithm


def _ring(k: str, n: int) -> tuple[float, int]:
    traffic, steps = _RING[k]
    return traffic(n), steps(n)


def _tree(k: str, n: int) -> tuple[float, int] | None:
    # NCCL's double binary tree: reduce up and broadcast down
    return (2.0, 2 * math.ceil(math.log2(n))) if k == "all_reduce" else None


def _one_shot(k: str, n: int) -> tuple[float, int] | None:
    # every rank reads all peers' buffers at once over a switched fabric
    return (float(n - 1), 1) if k == "all_reduce" else None


register_algorithm(Algorithm("ring", _ring))
register_algorithm(Algorithm("tree", _tree))
register_algorithm(Algorithm("one_shot", _one_shot, always=False))


def always_tried() -> tuple[str, ...]:
    """The algorithms the cost model tries on every collective, in registration order."""
    return tuple(a.name for a in ALGORITHMS.values() if a.always)


def collective_terms(kind: str, n: int, algorithm: str = "ring") -> tuple[float, int] | None:
    """(bytes on the wire per byte of message, latency steps) of ``algorithm`` for ``kind``
    over ``n`` ranks, or None where the algorithm does not apply.

    ``ring``: the formulas above. ``tree`` (all_reduce, as NCCL's double binary tree):
    reduce up and broadcast down, ``2 x bytes`` on the wire and ``2 ceil(log2 n)``
    steps. ``one_shot`` (all_reduce on a switched fabric, as the custom all-reduce of
    serving engines): every rank reads all peers' buffers at once, ``(n-1)/n x n``
    bytes in one step; it wins for small messages.
    """
    k = collective_kind(kind)
    if n <= 1:
        return 0.0, 0
    algo = ALGORITHMS.get(algorithm)
    if algo is None:
        raise PhysicsError(f"unknown collective algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    return algo.terms(k, n)


def collective_time(kind: str, nbytes: float, n: int, rate: float, latency: float,
                    algorithms: tuple[str, ...] | None = None) -> tuple[float, str]:
    """(seconds, algorithm) of the fastest of ``algorithms`` (default: ``always_tried()``)
    for an ``nbytes`` message over ``n`` ranks on a link sustaining ``rate`` B/s with
    ``latency`` per step."""
    algorithms = algorithms or always_tried()
    best, which = math.inf, algorithms[0]
    for a in algorithms:
        terms = collective_terms(kind, n, a)
        if terms is None:
            continue
        traffic, steps = terms
        t = 0.0 if traffic == 0.0 else steps * latency + traffic * nbytes / rate
        if t < best:
            best, which = t, a
    return (0.0 if best == math.inf else best), which


def hierarchical_collective(kind: str, nbytes: float, per_node: int, nodes: int,
                            intra: tuple[float, float], inter: tuple[float, float]) -> dict[str, float]:
    """A collective over ``per_node`` ranks in each of ``nodes`` nodes, run as NCCL runs it
    on rail-optimised clusters (one NIC per GPU): inside the nodes on the device fabric,
    across them on each rank's own NIC. ``intra``/``inter``: (sustained rate B/s, latency
    per step s) of the two levels. ``nbytes``: the message as in ``collective_terms``
    (all_reduce: the buffer; all_gather: the gathered output; all_to_all: what one rank
    sends in all, spread evenly over every rank).

    * all_reduce: reduce-scatter in the node (ring over ``g``), all-reduce of each rank's
      ``1/g`` shard across nodes (ring over ``N``, the ``g`` rails in parallel), then
      all-gather in the node.
    * all_gather / reduce_scatter: the cross-node ring over each rank's ``1/g`` column,
      then (before, for reduce_scatter) the in-node ring over the whole.
    * all_to_all: a rank's bytes for the other nodes, ``(N-1)/N``, leave on its NIC while
      those for its node's peers, ``(g-1)/(gN)``, cross the fabric at the same time.

    Returns seconds per level (``intra_s``, ``inter_s``), wire bytes one rank moves on
    each (``intra_bytes``, ``inter_bytes``) and the total ``time_s``.
    """
    k = collective_kind(kind)
    g, n = int(per_node), int(nodes)
    (ri, li), (rx, lx) = intra, inter
    ib = xb = 0.0
    si = sx = 0
    if k == "all_reduce":
        ib, si = 2.0 * (g - 1) / g * nbytes, 2 * (g - 1)
        xb, sx = 2.0 * (n - 1) / n * nbytes / g, 2 * (n - 1)
    elif k in ("all_gather", "reduce_scatter"):
        ib, si = (g - 1) / g * nbytes, g - 1
        xb, sx = (n - 1) / n * nbytes / g, n - 1
    elif k == "all_to_all":
        ib, si = (g - 1) / (g * n) * nbytes, 1 if g > 1 else 0
        xb, sx = (n - 1) / n * nbytes, 1 if n > 1 else 0
    elif k == "send_recv":
        xb, sx = (nbytes, 1) if n > 1 else (0.0, 0)
        ib, si = (nbytes, 1) if n == 1 and g > 1 else (0.0, 0)
    else:  # broadcast: the pipelined ring crosses the nodes once and each node's ring once
        ib, si = (nbytes, g - 1) if g > 1 else (0.0, 0)
        xb, sx = (nbytes, n - 1) if n > 1 else (0.0, 0)
    intra_s = (si * li + ib / ri) if ib > 0 else 0.0
    inter_s = (sx * lx + xb / rx) if xb > 0 else 0.0
    # all_to_all drives both levels at once; the others run their phases one after another
    total = max(intra_s, inter_s) if k == "all_to_all" else intra_s + inter_s
    return {"time_s": total, "intra_s": intra_s, "inter_s": inter_s, "intra_bytes": ib, "inter_bytes": xb}
