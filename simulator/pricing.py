"""Pricing terms: ``evaluate`` puts seconds on a ``TermTable`` of many ops' terms with a
``Params`` at once (the formulas of the ``simulator.costmodel`` docstring), and
``costs_of`` reads the ``OpCost`` of each op off the result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_models import physics
from hw_models.resource_id import parse

from .opterms import OpTerms
from .params import Params


@dataclass(slots=True)
class Demand:
    """``bytes`` this op moves through ``resource`` at ``bandwidth`` B/s when it runs alone."""

    resource: str
    bytes: float
    bandwidth: float
    #: the bound label this demand gives when it dominates ("memory:hbm", "link:host", "pim")
    bound: str = ""
    #: peak bandwidth without efficiency (for the roofline bound)
    peak_bandwidth: float = 0.0

    @property
    def time_s(self) -> float:
        return self.bytes / self.bandwidth if self.bytes > 0 else 0.0


@dataclass(slots=True)
class OpCost:
    op_id: int
    compute_s: float = 0.0
    demands: list[Demand] = field(default_factory=list)
    fixed_s: float = 0.0
    atomic_s: float = 0.0
    pim_s: float = 0.0
    time_s: float = 0.0
    bound: str = "none"
    roofline_s: float = 0.0
    #: the op's cost rule was unknown (time comes from its bytes only), or a needed spec is missing
    unknown: bool = False
    flops: float = 0.0
    bytes: float = 0.0
    launches: int = 0
    #: which compute unit ran it ("matrix.bf16", "vector.fp32", "pim", "")
    unit: str = ""

    @property
    def memory_s(self) -> float:
        return max((d.time_s for d in self.demands), default=0.0)

    def demand(self, resource: str) -> Demand | None:
        for d in self.demands:
            if d.resource == resource:
                return d
        return None


class TermTable:
    """Many ops' terms as flat arrays, grouped by parameter key, for ``evaluate``."""

    def __init__(self, terms: list[OpTerms]) -> None:
        self.terms = terms
        self.n = len(terms)
        fo, fk, fc = [], [], []
        co, cg, ck, cs, cw, cok, cob = [], [], [], [], [], [], []
        do, dr, dk, ds, db = [], [], [], [], []
        g = 0
        for i, t in enumerate(terms):
            for key, count in t.fixed:
                fo.append(i)
                fk.append(key)
                fc.append(count)
            for alts in t.compute:
                for key, size, work, okey, ob in alts:
                    co.append(i)
                    cg.append(g)
                    ck.append(key)
                    cs.append(size)
                    cw.append(work)
                    cok.append(okey)
                    cob.append(ob)
                g += 1
            for res, (key, size, nbytes, _label, _peak) in t.demands.items():
                if nbytes > 0:
                    do.append(i)
                    dr.append(res)
                    dk.append(key)
                    ds.append(size)
                    db.append(nbytes)
        self.fixed = (np.array(fo, dtype=np.int64), _group(fk), np.array(fc, dtype=float))
        self.n_groups = g
        self.comp = (np.array(co, dtype=np.int64), np.array(cg, dtype=np.int64), _group(ck),
                     np.array(cs, dtype=float), np.array(cw, dtype=float), _group(cok), np.array(cob, dtype=float))
        self.dem = (np.array(do, dtype=np.int64), dr, _group(dk), np.array(ds, dtype=float), np.array(db, dtype=float))
        self.atomic = [(i, t.atomic) for i, t in enumerate(terms) if t.atomic is not None]
        self.pim = [(i, t.pim) for i, t in enumerate(terms) if t.pim is not None]
        self.coll = [(i, t.collective) for i, t in enumerate(terms) if t.collective is not None]
        self.matrix = np.array([t.matrix for t in terms], dtype=bool)


def _group(keys: list) -> dict:
    """key -> index array of the entries carrying it (None keys skipped)."""
    out: dict = {}
    for j, k in enumerate(keys):
        if k is not None:
            out.setdefault(k, []).append(j)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


@dataclass
class Evaluation:
    """Per-op seconds of every term, and per-demand rates (``TermTable.dem`` order)."""

    fixed: np.ndarray
    compute: np.ndarray
    memory: np.ndarray
    atomic: np.ndarray
    pim: np.ndarray
    time: np.ndarray
    dem_rate: np.ndarray
    dem_time: np.ndarray
    #: collectives: op index -> (resource, wire bytes, rate, algorithm)
    coll: dict[int, tuple[str, float, float, str]]


def _rates(groups: dict, sizes: np.ndarray, out: np.ndarray, params: Params) -> None:
    for key, idx in groups.items():
        out[idx] = params.rate(key, sizes[idx])


def evaluate(table: TermTable, params: Params) -> Evaluation:
    """Price every op of ``table`` with ``params`` (the formulas of ``simulator.costmodel``'s docstring)."""
    n = table.n
    fixed = np.zeros(n)
    fo, fk, fc = table.fixed
    if len(fo):
        sc = np.empty(len(fo))
        for key, idx in fk.items():
            sc[idx] = params.scalar(key)
        np.add.at(fixed, fo, fc * sc)

    compute = np.zeros(n)
    co, cg, ck, cs, cw, cok, cob = table.comp
    if len(co):
        rate = np.empty(len(co))
        _rates(ck, cs, rate, params)
        alt = cw / rate
        for key, idx in cok.items():
            alt[idx] = np.maximum(alt[idx], cob[idx] / params.rate(key, cob[idx]))
        best = np.full(table.n_groups, np.inf)
        np.minimum.at(best, cg, alt)
        gop = np.zeros(table.n_groups, dtype=np.int64)
        gop[cg] = co
        np.add.at(compute, gop, best)

    memory = np.zeros(n)
    do, dr, dk, ds, db = table.dem
    dem_rate = np.empty(len(do))
    _rates(dk, ds, dem_rate, params)
    dem_time = db / dem_rate if len(do) else np.zeros(0)
    if len(do):
        np.maximum.at(memory, do, dem_time)

    coll: dict[int, tuple[str, float, float, str]] = {}
    for i, (kind, ranks, size, res, eager, custom) in table.coll:
        rate = float(params.rate("link:interconnect", size))
        lat = params.scalar("latency:link:interconnect")
        call = params.scalar(("eager_call_latency" if eager else "call_latency") + ":link:interconnect")
        secs, algo = physics.collective_time(kind, size, ranks, rate, lat)
        if custom:
            # a serving engine's one-shot all-reduce: its own fixed time, one step; eager launch
            # skew is paid the same (every rank must reach it)
            extra = call - params.scalar("call_latency:link:interconnect")
            one = params.scalar("custom_latency:link:interconnect") + extra + (ranks - 1) * size / rate
            if one < secs + call:
                secs, algo, call = one, "one_shot", params.scalar("custom_latency:link:interconnect") + extra
        traffic, steps = physics.collective_terms(kind, ranks, algo)
        fixed[i] += (0.0 if algo == "one_shot" else steps * lat) + call
        coll[i] = (res, traffic * size, rate, algo)
        if traffic * size > 0:
            memory[i] = max(memory[i], traffic * size / rate)

    atomic = np.zeros(n)
    if table.atomic:
        idx = np.array([i for i, _ in table.atomic])
        upd = np.array([a[0] for _, a in table.atomic])
        per = np.array([a[1] for _, a in table.atomic])
        atomic[idx] = physics.atomic_time(upd, per, params.scalar("atomics.update_rate"),
                                          params.scalar("atomics.same_address_rate"))
    pim = np.zeros(n)
    for i, (tier, passes, bpp, fpp) in table.pim:
        pim[i] = physics.pim_time(passes, bpp, fpp, params.scalar(f"pim:{tier}.internal"),
                                  params.scalar(f"pim:{tier}.peak"), params.scalar(f"pim:{tier}.mode_switch"))
    mixed = np.where(table.matrix, physics.overlap(compute, memory, params.scalar("overlap")),
                     np.maximum(compute, memory))
    body = np.maximum(np.maximum(mixed, atomic), pim)
    return Evaluation(fixed, compute, memory, atomic, pim, fixed + body, dem_rate, dem_time, coll)


def costs_of(table: TermTable, ev: Evaluation, op_ids: list[int]) -> list[OpCost]:
    """``OpCost`` objects from an evaluation (what the engine and reports read)."""
    out = []
    do, dr = table.dem[0], table.dem[1]
    per_op: list[list[int]] = [[] for _ in range(table.n)]
    for j, i in enumerate(do.tolist()):
        per_op[i].append(j)
    for i, (t, oid) in enumerate(zip(table.terms, op_ids, strict=True)):
        dems = []
        for j in per_op[i]:
            res = dr[j]
            _key, _size, nbytes, label, peak = t.demands[res]
            dems.append(Demand(res, nbytes, float(ev.dem_rate[j]), label, peak))
        c = ev.coll.get(i)
        if c is not None and c[1] > 0:
            dems.append(Demand(c[0], c[1], c[2], str(parse(c[0]).bound), c[2]))
        comp, fixed = float(ev.compute[i]), float(ev.fixed[i])
        best, bound = comp, "compute"
        for d in dems:
            if d.time_s > best:
                best, bound = d.time_s, d.bound
        if ev.atomic[i] > best:
            best, bound = float(ev.atomic[i]), "atomic"
        if ev.pim[i] > best:
            best, bound = float(ev.pim[i]), "pim"
        if best <= 0 and fixed <= 0:
            bound = "none"
        elif fixed > best:
            bound = "latency"
        out.append(OpCost(oid, comp, dems, fixed, float(ev.atomic[i]), float(ev.pim[i]), float(ev.time[i]), bound,
                          t.roofline_s, t.unknown, t.flops, t.bytes, t.launches, t.unit))
    return out
