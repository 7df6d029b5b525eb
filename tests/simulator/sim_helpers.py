"""Shared by engineer D's simulator tests (imported as a module, not a conftest).

Hand-made graphs and a stand-in cost function for engine tests.

The stand-in prices an op from attrs alone (``dur`` seconds, byte ``demands`` as
``(resource, bytes, bandwidth)``), so engine tests check the engine's physics, not the
cost model's.
"""

from __future__ import annotations

from simulator.costmodel import Demand, OpCost
from workloads.graph import WorkloadGraph
from workloads.op import Access, Op


def stub_costs(graph, system, placement):
    out = []
    for op in graph.ops:
        a = op.attrs
        dem = [Demand(r, float(b), float(bw)) for r, b, bw in a.get("demands", [])]
        per_res: dict[str, float] = {}
        for d in dem:
            per_res[d.resource] = per_res.get(d.resource, 0.0) + d.bytes / d.bandwidth
        mem = max(per_res.values(), default=0.0)
        fixed = float(a.get("fixed", 0.0))
        body = max(float(a.get("dur", 0.0)), mem)
        bound = a.get("bound") or ("memory:hbm" if dem and mem >= float(a.get("dur", 0.0)) else "compute")
        out.append(OpCost(op_id=op.id, compute_s=float(a.get("dur", 0.0)), demands=dem, fixed_s=fixed,
                          time_s=fixed + body, bound=bound, roofline_s=body * 0.5))
    return out


def make_graph(specs, meta=None) -> WorkloadGraph:
    """``specs``: dicts with dur, demands, stream, launches, reads (tensor ids), module."""
    g = WorkloadGraph(meta={"model": "toy", "phase": "decode", "batch": 1, "context": 8, "dtype": "bf16",
                            **(meta or {})})
    for i, s in enumerate(specs):
        reads = [Access(t, 64, "activation") for t in s.get("reads", [f"t{i - 1}"] if i else [])]
        g.add(Op(i, "aten::op", s.get("kind", "elementwise"), "bf16", flops={"bf16": 1.0}, reads=reads,
                 writes=[Access(f"t{i}", 64, "activation")], launches=s.get("launches", 1),
                 module=s.get("module", ""), stream=s.get("stream", 0),
                 attrs={k: s[k] for k in ("dur", "demands", "fixed", "bound") if k in s}))
    return g


def h100():
    from hw_models.catalog import load

    return load("h100-sxm")
