"""The cost model's hooks for the built-in op kinds with terms of their own, named by
their records in the op-kind registry (``workloads.kinds``: ``terms`` and ``keys``).

A ``terms`` hook is ``(op, structure, placement, resident, terms, far) -> compute roofline
seconds`` and replaces ``simulator.opterms.device_terms`` for its kind (it may call it);
a ``keys`` hook is ``op -> efficiency keys`` (or None to fall back on the op name's).
"""

from __future__ import annotations

from collections.abc import Collection

from hw_models import physics
from hw_models.resource_id import ResourceId
from workloads.op import Op
from workloads.payloads import payload

from .opterms import DECODE_QUERY_ROWS, Far, OpTerms, Structure, device_terms, route_accesses
from .params import ParamError
from .placement import DEVICE, Placement


def attention_keys(op: Op) -> tuple[str, ...] | None:
    """Attention's phase: a GEMV over the cache (``attention.decode``, a few query rows) and
    prefill's square tiles run at different rates at equal FLOPs."""
    p = payload(op)
    if p is None or not p.sq:
        return None
    phase = "decode" if int(p.sq) <= DECODE_QUERY_ROWS else "prefill"
    return (f"attention.{phase}", "attention")


def scatter_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None, t: OpTerms,
                  far: Far) -> float:
    """An accumulating scatter: a kernel's terms, plus its atomic updates."""
    roof = device_terms(op, st, pl, resident, t, far)
    p = payload(op)
    if p.updates > 0:
        t.atomic = (float(p.updates), physics.updates_per_target(p.updates, p.distinct_targets))
    return roof


def collective_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None, t: OpTerms,
                     far: Far) -> float:
    """The collective on the interconnect (``simulator.pricing.evaluate`` picks its
    algorithm), and its buffers' bytes on the device; no compute."""
    _collective(op, st, t)
    route_accesses(op, st, pl, None, resident, t, far)
    return 0.0


def transfer_terms(op: Op, st: Structure, pl: Placement, resident: Collection[str] | None, t: OpTerms,
                   far: Far) -> float:
    _transfer(op, st, pl, t, far)
    return 0.0


def _collective(op: Op, st: Structure, t: OpTerms) -> None:
    c = payload(op)
    n = c.n_ranks
    if n <= 1:
        return
    try:
        ckind = physics.collective_kind(c.kind or "")
    except physics.PhysicsError:
        t.unknown = True  # priced by its bytes alone, and flagged
        return
    if st.system.interconnect is None:
        raise ParamError(f"system {st.system.id!r} has no interconnect for a {n}-way {ckind}; "
                         "add one to its spec (bandwidth, latency, efficiency with sources)")
    custom = c.custom and ckind == "all_reduce" and st.system.interconnect.custom_allreduce_latency is not None
    port = str(ResourceId("interconnect", device=st.d))
    t.collective = (ckind, n, c.bytes, port, c.launch != "graph", custom)


def _transfer(op: Op, st: Structure, pl: Placement, t: OpTerms, far: Far) -> None:
    """A copy between a far tier and device memory: tier memory, one link direction, device
    main memory. The tier is named by its payload (``tier`` or ``src``/``dst``) or is where the
    placement puts weights / KV / activations; with neither it is a device-local copy."""
    p = payload(op)
    size, src, dst, tier, direction = p.bytes, p.src, p.dst, p.tier, p.direction
    main_names = (DEVICE, st.device.main_memory.name)
    if tier is None and (src or dst):
        if src and src not in main_names:
            tier, direction = src, "h2d"
        elif dst and dst not in main_names:
            tier, direction = dst, "d2h"
    if tier is None:
        tier = next((w for w in (pl.tier_of(r) for r in ("weight", "kv_cache", "activation")) if w != DEVICE), None)
    res, label, key, peak = st.levels[st.main]
    if tier is None:
        t.demand(res, key, 2 * size, label, peak)  # no tier to cross: read and write main memory
        return
    far(tier, size, (direction or "h2d") == "h2d")
    t.demand(res, key, size, label, peak)
