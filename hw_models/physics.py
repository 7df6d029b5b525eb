"""Small pure functions that turn bytes, FLOPs and updates into seconds.

Numbers and spec objects in, seconds out; no graphs, no placement. The cost model
(``simulator/costmodel.py``) and calibration both call these, so a fitted parameter means
the same thing in both places.

Models, in one line each (details on each function):

* memory:  ``bytes / (bandwidth x efficiency(bytes))``
* compute: ``effective_flops / (peak x efficiency(flops))`` where matrix ops pay tile and
  wave quantisation (a GEMM with fewer output tiles than compute units leaves units idle)
* atomics: ``max(updates / update_rate, updates_per_target / same_address_rate)``
* links:   bulk DMA pays latency per transfer; cache-line access rounds each access up to
  the line size and keeps a bounded number of lines in flight (Little's law)
* PIM:     ``mode_switch + max(bytes / internal_bandwidth, flops / peak)``
* collectives: ring (and tree all-reduce), ``traffic x bytes / (bw x eff) + steps x latency``
"""

from __future__ import annotations

import math
from bisect import bisect_right
from functools import lru_cache

from .spec import AtomicSpec, ComputeUnit, DeviceSpec, EfficiencyCurve, LinkSpec, PimSpec

#: dtype whose vector unit serves any dtype the device lists no peak for
FALLBACK_DTYPE = "fp32"

#: cache-line requests a device keeps in flight over a load/store link (CXL). A GPU has
#: thousands of warps but the link's request credits cap what is outstanding; 256 lines of
#: 64 B over ~250 ns is ~65 GB/s, so the cap only bites on slow or long-latency links.
DEFAULT_LINE_CONCURRENCY = 256.0

#: line size assumed when a cache-line link omits ``granularity``
DEFAULT_LINE_BYTES = 64.0


class PhysicsError(ValueError):
    """A request the physics cannot answer (e.g. an unknown collective)."""

    user_facing = True


# -- efficiency curves ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _table(points: tuple[tuple[float, float], ...]) -> tuple[list[float], list[float]]:
    return [math.log10(x) for x, _ in points], [float(e) for _, e in points]


def efficiency(curve: EfficiencyCurve, size: float) -> float:
    """``curve(size)`` as a plain float, cached on the curve's points.

    Same result as ``EfficiencyCurve.__call__`` (linear in log10(size), flat beyond the
    ends) without numpy's per-call overhead; the cost model calls it thousands of times.
    """
    xs, es = _table(tuple(curve.points))
    x = math.log10(size) if size > 1.0 else 0.0
    if x <= xs[0]:
        return es[0]
    if x >= xs[-1]:
        return es[-1]
    i = bisect_right(xs, x)
    x0, x1, e0, e1 = xs[i - 1], xs[i], es[i - 1], es[i]
    return e0 + (e1 - e0) * (x - x0) / (x1 - x0)


# -- memory -----------------------------------------------------------------------------


def memory_time(nbytes: float, level) -> float:
    """Seconds to move ``nbytes`` through a memory ``level`` (a ``MemoryLevel``).

    The efficiency curve is read at the transfer size: small transfers cannot hide the
    level's latency and reach a small fraction of peak.
    """
    if nbytes <= 0:
        return 0.0
    return nbytes / (level.bandwidth.value * efficiency(level.efficiency, nbytes))


# -- compute ----------------------------------------------------------------------------


def compute_unit(device: DeviceSpec, dtype: str, matrix: bool = True) -> tuple[ComputeUnit, str]:
    """The unit that runs ``dtype`` math, and a label naming it (``matrix.bf16``).

    Fallback rule (documented, never zero): matrix ops use ``matrix[dtype]``, else
    ``vector[dtype]``; anything else uses ``vector[fp32]``, else the slowest vector unit
    listed (a conservative guess). Units with a zero peak count as missing.
    """
    if matrix:
        u = device.matrix.get(dtype)
        if u is not None and u.peak.value > 0:
            return u, f"matrix.{dtype}"
    u = device.vector.get(dtype)
    if u is not None and u.peak.value > 0:
        return u, f"vector.{dtype}"
    u = device.vector.get(FALLBACK_DTYPE)
    if u is not None and u.peak.value > 0:
        return u, f"vector.{FALLBACK_DTYPE}"
    live = [(k, v) for k, v in device.vector.items() if v.peak.value > 0]
    live += [(k, v) for k, v in device.matrix.items() if v.peak.value > 0]
    if not live:
        raise PhysicsError(f"device {device.name!r} lists no compute unit with a non-zero peak")
    k, v = min(live, key=lambda kv: kv[1].peak.value)
    return v, f"vector.{k}"


def wave_factor(m: int, n: int, batch: int, compute_units: int, tile_m: int = 128, tile_n: int = 128) -> float:
    """How long a matrix kernel occupies the machine, per unit of useful work.

    ``tiles = ceil(m/tile_m) * ceil(n/tile_n) * batch`` output tiles run in
    ``waves = ceil(tiles / compute_units)`` rounds; the last round leaves units idle, so
    effective flops = ``waves x compute_units x (flops / tiles)``. A GEMM with fewer tiles
    than units cannot use the whole device; one with ``compute_units + 1`` tiles takes
    about two waves. Work per tile is the average useful work, not a padded full tile:
    libraries shrink tiles for skinny problems, and padding a GEMV's single row to 128
    would make it compute-bound, which it never is.
    """
    if m <= 0 or n <= 0 or compute_units <= 0:
        return 1.0
    tiles = math.ceil(m / tile_m) * math.ceil(n / tile_n) * max(int(batch), 1)
    waves = math.ceil(tiles / compute_units)
    return waves * compute_units / tiles


def compute_time(
    flops: float,
    unit: ComputeUnit,
    *,
    m: int | None = None,
    n: int | None = None,
    batch: int = 1,
    compute_units: int | None = None,
    tile_m: int = 128,
    tile_n: int = 128,
    kind: tuple[str, ...] = (),
) -> float:
    """Seconds for ``flops`` on ``unit``.

    ``kind``: the op's efficiency keys, most specific first (``("elementwise.gelu",
    "elementwise")``); the unit's ``kind_efficiency`` curve for the first key it lists
    replaces its generic ``efficiency`` (``ComputeUnit.curve``).

    Without ``m``/``n``/``compute_units`` this is ``flops / (peak x efficiency(flops))``.
    With them (matrix ops) the work is inflated by ``wave_factor``: effective flops =
    waves x compute_units x work per tile. The efficiency curve is read at the useful
    flops; it carries what quantisation does not (pipeline fill, memory stalls).
    """
    if flops <= 0:
        return 0.0
    work = flops
    if m and n and compute_units:
        work = flops * wave_factor(int(m), int(n), batch, int(compute_units), tile_m, tile_n)
    return work / (unit.peak.value * efficiency(unit.curve(kind), flops))


def kind_keys(kind: str, name: str = "") -> tuple[str, ...]:
    """Efficiency keys of an op, most specific first: ``("elementwise.gelu", "elementwise")``.

    ``name`` is the traced op name (``aten.gelu.default``, ``aten.add_.Scalar``,
    ``aten::scaled_dot_product_attention``): the aten base name, in-place ``_`` dropped.
    """
    base = name.split("::")[-1]
    parts = base.split(".")
    if len(parts) > 1 and parts[0] in ("aten", "prims", "torch"):
        parts = parts[1:]
    op = parts[0].strip("_") if parts and parts[0] else ""
    return (f"{kind}.{op}", kind) if op else (kind,)


# -- atomics ----------------------------------------------------------------------------


def atomic_time(updates: float, distinct_targets: float, atomics: AtomicSpec) -> float:
    """Seconds for ``updates`` atomic accumulates spread over ``distinct_targets`` addresses.

    Distinct addresses proceed in parallel up to ``update_rate``; updates to one address
    serialise at ``same_address_rate``, so the hottest target (``updates / targets`` of
    them, assuming an even spread) sets a floor. ``distinct_targets <= 0`` means "not
    known" and is taken as all distinct (no collisions), the optimistic end.
    """
    if updates <= 0:
        return 0.0
    targets = distinct_targets if distinct_targets > 0 else updates
    targets = min(targets, updates)
    parallel = updates / atomics.update_rate.value
    serial = (updates / targets) / atomics.same_address_rate.value
    return max(parallel, serial)


# -- links ------------------------------------------------------------------------------


def line_bytes(link: LinkSpec) -> float:
    return link.granularity.value if link.granularity is not None and link.granularity.value > 0 else DEFAULT_LINE_BYTES


def link_wire_bytes(nbytes: float, link: LinkSpec, n_accesses: int = 1) -> float:
    """Bytes that actually cross ``link``: cache-line links round each access up to a line."""
    if nbytes <= 0:
        return 0.0
    if link.access != "cacheline":
        return float(nbytes)
    gran = line_bytes(link)
    n = max(int(n_accesses), 1)
    return n * math.ceil((nbytes / n) / gran) * gran


def link_bandwidth(link: LinkSpec, concurrency: float = DEFAULT_LINE_CONCURRENCY) -> float:
    """Sustained bytes/s one stream of traffic gets from ``link`` in one direction.

    Bulk: ``bandwidth x efficiency``. Cache-line: also capped by Little's law,
    ``concurrency x line / latency`` (only so many lines are in flight per round trip).
    """
    bw = link.bandwidth.value * link.efficiency.value
    if link.access == "cacheline" and link.latency.value > 0:
        bw = min(bw, concurrency * line_bytes(link) / link.latency.value)
    return bw


def link_latency(link: LinkSpec, n_accesses: int = 1) -> float:
    """Latency paid once per op: every DMA's setup for bulk links (DMAs on one copy
    engine start one after another); one round trip for cache-line links, after which
    the in-flight window keeps the pipe full and later latencies overlap."""
    if link.access == "cacheline":
        return link.latency.value
    return max(int(n_accesses), 1) * link.latency.value


def link_time(nbytes: float, link: LinkSpec, n_accesses: int = 1, concurrency: float = DEFAULT_LINE_CONCURRENCY) -> float:
    """Seconds to move ``nbytes`` over ``link`` in one direction, as ``n_accesses`` transfers.

    bulk:      ``n_accesses x latency + bytes / (bw x eff)``
    cacheline: ``latency + wire_bytes / min(bw x eff, concurrency x line / latency)`` with
               ``wire_bytes`` = each access rounded up to whole lines.
    """
    if nbytes <= 0:
        return 0.0
    return link_latency(link, n_accesses) + link_wire_bytes(nbytes, link, n_accesses) / link_bandwidth(
        link, concurrency
    )


# -- processing in memory ---------------------------------------------------------------


def pim_time(flops: float, nbytes: float, pim: PimSpec) -> float:
    """Seconds for a GEMV-like op run by the PIM units next to the banks holding its weights."""
    if flops <= 0 and nbytes <= 0:
        return 0.0
    return pim.mode_switch.value + max(nbytes / pim.internal_bandwidth.value, flops / pim.peak.value)


# -- collectives ------------------------------------------------------------------------

#: ring algorithms: (fraction of the message each rank sends, latency steps), as functions of n
_COLLECTIVES = {
    "all_reduce": (lambda n: 2.0 * (n - 1) / n, lambda n: 2 * (n - 1)),
    "all_gather": (lambda n: (n - 1) / n, lambda n: n - 1),
    "reduce_scatter": (lambda n: (n - 1) / n, lambda n: n - 1),
    "all_to_all": (lambda n: (n - 1) / n, lambda n: n - 1),
    # pipelined ring broadcast: every byte crosses each hop once, steps fill the pipe
    "broadcast": (lambda n: 1.0, lambda n: n - 1),
}


def collective_kind(kind: str) -> str:
    k = kind.lower().replace("-", "_").split("::")[-1].strip("_")
    k = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
         "alltoall": "all_to_all", "all_gather_into_tensor": "all_gather",
         "reduce_scatter_tensor": "reduce_scatter"}.get(k, k)
    if k not in _COLLECTIVES:
        raise PhysicsError(f"unknown collective {kind!r}; known: {', '.join(_COLLECTIVES)}")
    return k


def collective_terms(kind: str, n: int, algorithm: str = "ring") -> tuple[float, int]:
    """(bytes on the wire per byte of message, latency steps) for ``kind`` over ``n`` ranks.

    ``ring``: the formulas above. ``tree`` (all_reduce only, as NCCL's double binary
    tree): reduce up and broadcast down a tree, ``2 x bytes`` on the wire and
    ``2 ceil(log2 n)`` latency steps; other kinds have no tree and use the ring.
    """
    k = collective_kind(kind)
    if n <= 1:
        return 0.0, 0
    if algorithm == "tree" and k == "all_reduce":
        return 2.0, 2 * math.ceil(math.log2(n))
    if algorithm not in ("ring", "tree"):
        raise PhysicsError(f"unknown collective algorithm {algorithm!r}; known: ring, tree, auto")
    traffic, steps = _COLLECTIVES[k]
    return traffic(n), steps(n)


def collective_algorithm(kind: str, nbytes: float, n: int, link: LinkSpec) -> str:
    """The faster of ring and tree for this message, as NCCL's tuner picks: trees win for
    small messages on many ranks (fewer latency steps), rings for large ones (less traffic)."""
    return min(("ring", "tree"), key=lambda a: collective_time(kind, nbytes, n, link, a))


def collective_time(kind: str, nbytes: float, n: int, link: LinkSpec, algorithm: str = "ring") -> float:
    """Seconds for a collective of an ``nbytes`` message over ``n`` ranks on ``link``.

    ring all_reduce: ``2(n-1)/n x bytes / (bw x eff) + 2(n-1) x latency``;
    ring all_gather / reduce_scatter: ``(n-1)/n x bytes / (bw x eff) + (n-1) x latency``;
    ``algorithm="tree"`` or ``"auto"`` (the faster) see ``collective_terms``; n=1 -> 0.
    """
    if algorithm == "auto":
        algorithm = collective_algorithm(kind, nbytes, n, link)
    traffic, steps = collective_terms(kind, n, algorithm)
    if traffic == 0.0:
        return 0.0
    return traffic * nbytes / (link.bandwidth.value * link.efficiency.value) + steps * link.latency.value
