"""The simpy engine: a host issuing kernels, device streams, shared bandwidth, prefetch.

Physics (docs/architecture.md, "The physics"):

* **Host.** The host walks the ops in program order. Eager launch pays
  ``host.dispatch_overhead`` per kernel launch, and an op whose kernel comes from a vendor
  library (GEMMs, attention) ``host.library_call`` more; graph replay pays
  ``host.graph_launch`` once and ``host.graph_node_cost`` per kernel. An op is *issued* when the host has paid
  for it. A view (``launches == 0``) costs the host nothing: it launches no kernel, and
  ``dispatch_overhead`` is the per-*launch* CPU time calibrated on whole-model steps, so
  the Python/dispatcher time of the views between launches is already folded into it.
  Counting views again would charge that time twice. Nothing on the device feeds back
  on the host here (no synchronising op, an unbounded launch queue), so the host's
  issue times are the running sum of its costs, computed once; the stream processes
  wait for them with simpy timeouts (one event fewer per op than a host process).
  Except on a CPU device (``EnginePlan.serial_host``): the thread that dispatches is the one
  that computes, so op ``i``'s dispatch starts only when op ``i-1`` has ended,
  ``issue_i = max(issue_{i-1}, end_{i-1}) + host_cost_i``; a host process walks the ops.
* **Streams.** Each (device, stream) is a process that starts its next op at
  ``max(issue, end of its cross-stream dependencies, end of the previous op on the
  stream)`` and holds it for its cost-model duration. Nothing else: when ops are
  shorter than dispatch the stream waits for the host and the device idles, which is
  the launch-bound regime, without a fudge factor.
* **Shared bandwidth.** Every op's byte demands are flows on processor-sharing
  resources (``simulator.resources``), so concurrent ops on one memory or link direction
  slow each other; an op running alone takes exactly its cost-model time.
* **Prefetch.** With ``placement.prefetch`` the cost model prices ops as reading their
  far-tier weights and KV cache from device memory, and the engine adds one copy per op
  on a prefetch stream that moves those bytes over the tier's link (host->device
  direction) before the op may start. Policy: a copy for an op in decoder layer ``L``
  may start once the first op of layer ``L-1`` has started (one layer of look-ahead,
  which bounds the staging buffer to about one layer of far-tier bytes, the device
  memory headroom a runtime would reserve); copies for ops outside numbered layers
  start when the host issues the op. Copies run in program order on one stream.
  Far-tier bytes an op writes (new KV entries) are written to device memory and copied
  back over the link's device->host direction by a write-back stream once the op ends.

Why one long module: the code is the physics above, in three parts that share
``EnginePlan``: the graph as flat arrays (``GraphArrays``), the plan with its prefetch
copies (``build_engine_plan``), and the simpy replay (``run_simpy``).
``simulator.fastpath`` is the closed form of the same recurrences.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy

from hw_models import physics
from hw_models.resource_id import ResourceId
from workloads.op import LIBRARY_KINDS

from .resources import NO_RESOURCE, SharedBandwidth

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")


# ``Copy.after`` is an op index (the copy starts when that op starts) or one of these:
#: the copy starts when the op that needs it is issued (no earlier layer to overlap)
AFTER_ISSUE = -1
#: the copy starts at time zero (the first layer's bytes)
AT_ONCE = -2
#: a write-back: it starts when its op ends
WRITEBACK = -3


@dataclass(slots=True)
class Copy:
    """A prefetch copy: far-tier bytes one op needs, moved ahead of it over a link."""

    op: int  # index of the op that needs the bytes
    after: int  # op index whose start opens the window, or AFTER_ISSUE, AT_ONCE or WRITEBACK
    res: list[int]
    work: list[float]
    floor: float
    tail: float
    nbytes: float
    resource: str


@dataclass
class EnginePlan:
    """Everything the engines need, as flat arrays in program order (no op objects)."""

    host_cost: np.ndarray
    dur: np.ndarray
    lane: np.ndarray  # stream index per op (device, stream) mapped to 0..k-1
    lanes: list[tuple[int, int]]
    deps: list[list[int]]  # cross-lane dependencies only (same-lane order is implied)
    res: list[list[int]]
    work: list[list[float]]
    tail: np.ndarray
    resource_names: list[str]
    copies: list[Copy] = field(default_factory=list)
    copy_of: dict[int, int] = field(default_factory=dict)  # op index -> copy index
    #: the host is the device (a CPU running eager ops on its own thread): it cannot
    #: dispatch op ``i`` before op ``i-1`` has finished, ``issue_i = max(issue_{i-1},
    #: end_{i-1}) + host_cost_i``
    serial_host: bool = False
    #: the graph's ``GraphArrays`` (set by ``build_engine_plan``)
    arrays: object = None

    @property
    def n(self) -> int:
        return len(self.dur)

    @property
    def chain(self) -> bool:
        """True when the fast path's recurrence is exact: one lane, no copies, no cross deps."""
        if len(self.lanes) > 1 or self.copies:
            return False
        return not getattr(self.arrays, "has_deps", True) or not any(self.deps)


#: host parameter per launch mode: eager pays the framework's dispatch inside model code
#: per launch; ``loop`` is a bare op called in a tight loop (a benchmark); ``graph``
#: pays one replay plus a per-node cost; ``device`` is a profiler's view of the kernels
#: alone (no host at all)
LAUNCH_MODES = ("eager", "graph", "loop", "device")


def host_costs(launches: np.ndarray, launch: str, params, library: np.ndarray | None = None) -> np.ndarray:
    """CPU seconds the host spends before each op is issued, from ``params``
    (``simulator.params``), the ops' kernel ``launches`` and which ops call a vendor
    library (``library``, ``workloads.op.LIBRARY_KINDS``; none when not given)."""
    launches = np.asarray(launches, dtype=float)
    if launch in ("eager", "loop"):
        per = params.scalar("host.dispatch" if launch == "eager" else "host.op_dispatch")
        cost = launches * per
        if library is not None:
            # a graph replay skips this path too: only eager launches pay it
            cost = cost + (np.asarray(library, dtype=bool) & (launches > 0)) * params.scalar("host.library_call")
        return cost
    if launch == "graph":
        cost = launches * params.scalar("host.graph_node")
        if len(cost):
            cost[0] += params.scalar("host.graph_launch")
        return cost
    if launch == "device":
        return np.zeros(len(launches))
    raise ValueError(f"launch must be one of {', '.join(LAUNCH_MODES)}, got {launch!r}")


def layer_of(module: str) -> int | None:
    m = _LAYER.search(module or "")
    return int(m.group(1)) if m else None


class GraphArrays:
    """What the engines and ``SimResult`` read of a graph, as arrays, computed once per
    graph object (a sweep simulates one graph on many systems): lanes, cross-lane
    dependencies, launches, FLOPs and bytes per op, and the inputs of the floors."""

    __slots__ = ("ops", "n", "lane", "lanes", "deps", "launches", "library", "flops", "bytes", "unknown", "kinds",
                 "acc_bytes", "acc_role", "acc_code", "roles", "has_deps", "flop_vals", "flop_pair", "flop_pairs", "kernels",
                 "flops_total", "bytes_total", "__weakref__")

    def __init__(self, graph) -> None:
        ops = list(graph.ops)
        self.ops = ops
        n = self.n = len(ops)
        lanes: list[tuple[int, int]] = []
        lane_ix: dict[tuple[int, int], int] = {}
        lane = np.zeros(n, dtype=np.int64)
        launches = np.empty(n)
        library = np.zeros(n, dtype=bool)
        flops = np.empty(n)
        nbytes = np.empty(n)
        acc_bytes: list[float] = []
        acc_role: list[str] = []
        flop_items: list[tuple[float, str, str]] = []
        for i, op in enumerate(ops):
            key = (op.device, op.stream)
            k = lane_ix.get(key)
            if k is None:
                k = lane_ix[key] = len(lanes)
                lanes.append(key)
            lane[i] = k
            launches[i] = op.launches
            library[i] = op.kind in LIBRARY_KINDS
            flops[i] = op.total_flops
            nbytes[i] = op.bytes
            if op.kind != "view":
                for a in op.reads:
                    acc_bytes.append(a.bytes)
                    acc_role.append(a.role)
                for a in op.writes:
                    acc_bytes.append(a.bytes)
                    acc_role.append(a.role)
                for dt, f in op.flops.items():
                    if f > 0:
                        flop_items.append((f, dt, op.dtype))
        self.lane, self.lanes = lane, lanes
        pos = {op.id: i for i, op in enumerate(ops)}
        deps: list[list[int]] = [[] for _ in range(n)]
        edges = graph.edges() if hasattr(graph, "edges") else []
        if len(lanes) > 1:
            for u, v in edges:
                iu, iv = pos.get(u), pos.get(v)
                if iu is not None and iv is not None and lane[iu] != lane[iv] and iu < iv:
                    deps[iv].append(iu)
        self.deps = deps
        self.has_deps = any(deps)
        self.launches, self.library, self.flops, self.bytes = launches, library, flops, nbytes
        self.unknown = np.array([bool(op.unknown) for op in ops], dtype=bool)
        self.kinds = [op.kind for op in ops]
        self.acc_bytes = np.array(acc_bytes, dtype=float)
        self.acc_role = acc_role
        self.roles = list(dict.fromkeys(acc_role))
        code = {r: i for i, r in enumerate(self.roles)}
        self.acc_code = np.array([code[r] for r in acc_role], dtype=np.int64)
        pairs: dict[tuple[str, str], int] = {}
        self.flop_vals = np.array([f for f, _, _ in flop_items], dtype=float)
        self.flop_pair = np.array([pairs.setdefault((dt, od), len(pairs)) for _, dt, od in flop_items],
                                  dtype=np.int64)
        self.flop_pairs = list(pairs)
        self.kernels = int(sum(op.launches for op in ops))
        # sequential sums, as sum() over the ops gives them (cumsum adds in order)
        self.flops_total = float(np.cumsum(flops)[-1]) if n else 0.0
        self.bytes_total = float(sum(op.bytes for op in ops))


class PerOp(Sequence):
    """A per-op list that is a per-group list read through each op's group (no copy)."""

    __slots__ = ("items", "group_of")

    def __init__(self, items: list, group_of: list[int]) -> None:
        self.items, self.group_of = items, group_of

    def __len__(self) -> int:
        return len(self.group_of)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.items[g] for g in self.group_of[i]]
        return self.items[self.group_of[i]]


_ARRAYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def graph_arrays(graph) -> GraphArrays:
    """``GraphArrays`` of ``graph``, remembered while its ops are the same objects."""
    ops = graph.ops
    try:
        ga = _ARRAYS.get(graph)
    except TypeError:
        return GraphArrays(graph)
    if ga is None or ga.n != len(ops) or any(a is not b for a, b in zip(ga.ops, ops, strict=True)):
        ga = _ARRAYS[graph] = GraphArrays(graph)
    return ga


class _NoDeps:
    """Shared ``[[] ... []]`` lists (read-only) for graphs without cross-lane dependencies."""

    def __init__(self) -> None:
        self.by_n: dict[int, list] = {}

    def get(self, n: int) -> list:
        got = self.by_n.get(n)
        if got is None:
            if len(self.by_n) > 64:
                self.by_n.clear()
            got = self.by_n[n] = [[] for _ in range(n)]
        return got


_NO_DEPS = _NoDeps()


def build_engine_plan(graph, system, costs, launch: str, placement=None, params=None, arrays=None) -> EnginePlan:
    """The engines' input (``EnginePlan``). ``costs``: one ``OpCost`` per op, or ``(group of each op, OpCost
    of each group)`` as ``costmodel.grouped_costs`` gives them (each group is read once).
    ``arrays``: the graph's ``GraphArrays`` (or a ``FamilyPoint``) if the caller has them."""
    from .params import Params

    params = params or Params(system)
    ga = arrays if arrays is not None else graph_arrays(graph)
    n = ga.n
    if isinstance(costs, tuple):
        group_of, reps = costs
        group_of = np.asarray(group_of, dtype=np.int64)
    else:
        reps = list(costs)
        group_of = np.arange(n, dtype=np.int64)
    if len(group_of) != n:
        raise ValueError(f"{len(group_of)} costs for {n} ops")
    names: list[str] = []
    index: dict[str, int] = {}

    def rid(name: str) -> int:
        i = index.get(name)
        if i is None:
            i = index[name] = len(names)
            names.append(name)
        return i

    g = len(reps)
    gdur = np.empty(g)
    gtail = np.empty(g)
    gres: list[list[int]] = []
    gwork: list[list[float]] = []
    for j, c in enumerate(reps):
        d = float(c.time_s)
        gdur[j] = d
        r, w = [], []
        for dm in c.demands:
            if dm.bytes > 0 and dm.bandwidth > 0:
                k = rid(dm.resource)
                if k in r:  # two demands on one resource queue on it, they do not share it
                    w[r.index(k)] += dm.bytes / dm.bandwidth
                else:
                    r.append(k)
                    w.append(dm.bytes / dm.bandwidth)
        gres.append(r)
        gwork.append(w)
        longest = max(w) if w else 0.0
        gtail[j] = min(max(float(c.fixed_s), 0.0), max(d - longest, 0.0))
    gl = group_of.tolist()
    # per-group lists read through each op's group: the engines never change them in place
    res, work = PerOp(gres, gl), PerOp(gwork, gl)
    eplan = EnginePlan(host_costs(ga.launches, launch, params, ga.library), gdur[group_of], ga.lane.copy(), list(ga.lanes),
                [list(d) for d in ga.deps] if ga.has_deps else _NO_DEPS.get(n), res, work,
                gtail[group_of], names, serial_host=system.device.serial_dispatch.value, arrays=ga)
    if placement is not None and placement.prefetch:
        _add_prefetch(eplan, graph, system, placement, rid, params)
    return eplan


def _add_prefetch(eplan: EnginePlan, graph, system, placement, rid, params) -> None:
    """One copy per op reading far-tier (host/CXL) weights or KV cache; see module doc."""
    first_of_layer: dict[int, int] = {}
    for i, op in enumerate(graph.ops):
        L = layer_of(op.module)
        if L is not None and L not in first_of_layer:
            first_of_layer[L] = i

    def far_bytes(accesses) -> dict[str, float]:
        by_tier: dict[str, float] = {}
        for a in accesses:
            if a.role not in ("weight", "kv_cache"):
                continue
            tier = placement.tier_of(a.role)
            if tier == "device" or tier == system.device.main_memory.name:
                continue
            if system.tier(tier).kind == "pim":
                continue  # PIM weights are computed on in place, never copied
            by_tier[tier] = by_tier.get(tier, 0.0) + a.bytes
        return by_tier

    def copy(i: int, after: int, by_tier: dict[str, float], direction: str) -> Copy:
        r, w, floor, lat, nbytes = [], [], 0.0, 0.0, 0.0
        for tier, b in sorted(by_tier.items()):
            link = system.tier(tier).link
            cacheline = link.access == "cacheline"
            wire = physics.link_wire_bytes(b, cacheline, link.granularity.value if cacheline else 0.0)
            stream = wire / float(params.rate(f"link:{tier}", wire))
            latency = params.scalar(f"latency:link:{tier}")
            r.append(rid(str(ResourceId("link", tier, direction=direction))))
            w.append(stream)
            floor = max(floor, latency + stream)
            lat = max(lat, latency)
            nbytes += b
        return Copy(i, after, r, w, floor, lat, nbytes, names_of(r, eplan))

    writebacks = []
    for i, op in enumerate(graph.ops):
        reads = far_bytes(op.reads)
        if reads:
            L = layer_of(op.module)
            after = first_of_layer.get(L - 1, AFTER_ISSUE) if L is not None else AFTER_ISSUE
            if after == AFTER_ISSUE and L is not None:
                after = AT_ONCE  # first layer: free to start at time zero
            eplan.copy_of[i] = len(eplan.copies)
            eplan.copies.append(copy(i, after, reads, "h2d"))
        writes = far_bytes(op.writes)
        if writes:
            writebacks.append(copy(i, WRITEBACK, writes, "d2h"))
    eplan.copies.extend(writebacks)


def names_of(res: list[int], eplan: EnginePlan) -> str:
    return ",".join(eplan.resource_names[r] for r in res)


@dataclass
class Timeline:
    issue: np.ndarray
    start: np.ndarray
    end: np.ndarray
    slowed_by: np.ndarray  # resource index whose contended flow drained last, NO_RESOURCE if none
    copy_start: np.ndarray
    copy_end: np.ndarray
    host_busy: float


def run_simpy(eplan: EnginePlan) -> Timeline:
    """Replay ``eplan`` with simpy; see the module docstring for the physics."""
    n = eplan.n
    env = simpy.Environment()
    bw = SharedBandwidth(env, eplan.resource_names)
    nan = float("nan")
    # The host process: nothing on the device feeds back on the host in this model (no
    # synchronising op, an unbounded launch queue), so its issue times are exactly the
    # running sum of its costs. Computing them up front replaces one simpy event per op
    # and changes no result; streams then wait for each issue time with a timeout.
    serial = eplan.serial_host
    issue = [nan] * n if serial else np.cumsum(eplan.host_cost).tolist()
    start = [nan] * n
    end = [nan] * n
    slowed = [NO_RESOURCE] * n
    ncopy = len(eplan.copies)
    cstart = [nan] * ncopy
    cend = [nan] * ncopy
    end_wait: dict[int, simpy.Event] = {}
    cend_wait: dict[int, simpy.Event] = {}
    start_wait: dict[int, simpy.Event] = {}
    dur = eplan.dur.tolist()
    tail = eplan.tail.tolist()
    res, work, deps = eplan.res, eplan.work, eplan.deps
    if isinstance(res, PerOp):  # plain lists for the hot loop
        res = [res.items[g] for g in res.group_of]
    if isinstance(work, PerOp):
        work = [work.items[g] for g in work.group_of]
    copy_of = eplan.copy_of
    copies = eplan.copies
    timeout = env.timeout
    bw_start, finish, wait_job = bw.start, bw.finish, bw.wait

    def wait(table: dict[int, simpy.Event], i: int) -> simpy.Event:
        ev = table.get(i)
        if ev is None:
            ev = table[i] = env.event()
        return ev

    issue_wait: dict[int, simpy.Event] = {}

    def until_issued(i: int):
        if serial and issue[i] != issue[i]:  # NaN: the serial host has not reached op i yet
            yield wait(issue_wait, i)
        t = issue[i] - env.now
        if t > 0.0:
            yield timeout(t)

    def serial_host_proc():
        # one thread dispatches and runs: op i's dispatch starts when op i-1 has ended
        t = 0.0
        host_cost = eplan.host_cost.tolist()
        for i in range(n):
            if i > 0:
                if end[i - 1] != end[i - 1]:
                    yield wait(end_wait, i - 1)
                t = max(t, end[i - 1])
            t += host_cost[i]
            if t > env.now:
                yield timeout(t - env.now)
            issue[i] = t
            ev = issue_wait.pop(i, None)
            if ev is not None:
                ev.succeed()

    def lane_proc(idx: list[int]):
        for i in idx:
            if serial:
                yield from until_issued(i)
            else:  # inlined until_issued: most ops are issued before their stream reaches them
                t = issue[i] - env.now
                if t > 0.0:
                    yield timeout(t)
            dps = deps[i]
            if dps:
                for d in dps:
                    if end[d] != end[d]:  # NaN: not finished yet
                        yield wait(end_wait, d)
            if copy_of:
                c = copy_of.get(i)
                if c is not None and cend[c] != cend[c]:
                    yield wait(cend_wait, c)
            now = env.now
            start[i] = now
            if start_wait:
                ev = start_wait.pop(i, None)
                if ev is not None:
                    ev.succeed()
            r = res[i]
            d = dur[i]
            if r:
                job = yield bw_start(r, work[i], d, tail[i])
                if not finish(job):
                    yield wait_job(job)
                if env.now > now + d * (1 + 1e-9) + 1e-15:
                    slowed[i] = job.slowed_by
            elif d > 0.0:
                yield timeout(d)
            end[i] = env.now
            if end_wait:
                ev = end_wait.pop(i, None)
                if ev is not None:
                    ev.succeed()

    def prefetch_proc():
        for k, cp in enumerate(copies):
            if cp.after == WRITEBACK:
                continue
            if cp.after >= 0:
                if start[cp.after] != start[cp.after]:
                    yield wait(start_wait, cp.after)
            elif cp.after == AFTER_ISSUE:
                yield from until_issued(cp.op)
            cstart[k] = env.now
            job = yield bw_start(cp.res, cp.work, cp.floor, cp.tail)
            if not finish(job):
                yield wait_job(job)
            cend[k] = env.now
            ev = cend_wait.pop(k, None)
            if ev is not None:
                ev.succeed()

    def writeback_proc():
        for k, cp in enumerate(copies):
            if cp.after != WRITEBACK:
                continue
            if end[cp.op] != end[cp.op]:
                yield wait(end_wait, cp.op)
            cstart[k] = env.now
            job = yield bw_start(cp.res, cp.work, cp.floor, cp.tail)
            if not finish(job):
                yield wait_job(job)
            cend[k] = env.now

    lane = eplan.lane
    if serial:
        env.process(serial_host_proc())
    for li in range(len(eplan.lanes)):
        env.process(lane_proc(np.flatnonzero(lane == li).tolist()))
    if copies:
        env.process(prefetch_proc())
        env.process(writeback_proc())
    env.run()
    if any(e != e for e in end):
        raise RuntimeError("simulation deadlocked: some ops never ran (a dependency cycle across streams)")
    return Timeline(
        np.array(issue), np.array(start), np.array(end), np.array(slowed, dtype=np.int64),
        np.array(cstart), np.array(cend), float(eplan.host_cost.sum()),
    )
