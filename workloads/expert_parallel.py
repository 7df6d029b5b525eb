"""Expert parallelism as a graph transform: one device's share of a MoE step over ``ep`` devices.

``expert_shard(graph, ep, imbalance)`` takes the step one expert-parallel rank runs for
its own sequences (attention data-parallel: each of the ``ep`` ranks holds ``batch / ep``
sequences and the whole attention, as DeepSeek-V3 and SGLang/TensorRT-LLM's "attention
DP + EP" serve) and returns what that rank runs when the routed experts are spread over
the ``ep`` ranks, ``E / ep`` experts each:

* **dispatch** (an ``all_to_all`` before each ``moe`` op): every local token goes to the
  ranks owning its ``k`` experts: ``T·k·hidden`` activation bytes per rank (``T`` the
  rank's tokens); the collective's own formula puts ``(ep-1)/ep`` of them on the wire.
* **experts**: the ``ep`` ranks' ``ep·T`` tokens pick ``k`` of ``E`` experts; a rank holds
  ``E/ep`` and reads, on average, the weights of ``E/ep · (1-(1-k/E)^(ep·T))`` of them
  (the tracer's uniform-routing expectation, ``rules.expected_unique_experts``, over the
  whole group). A degree that does not divide ``E`` gives each rank ``ceil(E/ep)`` slots,
  the spare ones holding redundant copies of hot experts (DeepSeek-V3 serves 256 experts
  plus 32 redundant ones on EP72/EP144, its inference-system overview says). On average it runs ``ep·T·k / ep = T·k`` token-expert pairs; routing is
  never even, and the busiest rank sets the pace, so expert FLOPs are multiplied by
  ``imbalance`` (max over mean rank load; default in ``simulator/scaleout.yaml``).
* **combine** (an ``all_to_all`` after it): the expert outputs return, the same bytes.

Shared experts (DeepSeek-V3) are ordinary ops and stay replicated on every rank; the
router weight is replicated too. With tensor parallelism inside each rank (``shard``
first), the moe op's bytes and FLOPs are already ``1/tp``; the all-to-all then moves
each TP rank's full hidden states, as the engines do.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .errors import WorkloadError
from .graph import WorkloadGraph
from .op import Access, Op
from .payloads import Collective, payload, store
from .rules import expected_unique_experts
from .tensor_parallel import _copy


class ExpertParallelError(WorkloadError):
    """An expert-parallel degree the model cannot be split by."""


def check_degree(graph: WorkloadGraph, ep: int) -> None:
    """Raise (one line) unless the model has MoE layers whose experts ``ep`` divides."""
    if ep < 1:
        raise ExpertParallelError(f"--ep must be >= 1, got {ep}")
    if ep == 1:
        return
    moe = [op for op in graph.ops if op.kind == "moe"]
    if not moe:
        raise ExpertParallelError(f"--ep {ep}: {graph.meta.get('model', 'this model')} has no mixture-of-experts "
                                  "layers; expert parallelism needs a MoE model (--ep 1 for a dense one)")
    e = int(payload(moe[0]).num_experts)
    if ep > e:
        raise ExpertParallelError(f"--ep {ep} exceeds the {e} experts of {graph.meta.get('model', 'this model')}; "
                                  f"allowed: 1..{e}")


def dispatch_bytes(op: Op, elem_bytes: int = 2) -> int:
    """Bytes one rank sends in a dispatch (and receives back in the combine): each of its
    tokens' hidden state once per routed expert."""
    m = payload(op)
    return int(m.tokens) * int(m.top_k) * int(m.hidden) * elem_bytes


def expert_shard(graph: WorkloadGraph, ep: int, imbalance: float = 1.0) -> WorkloadGraph:
    """The graph one rank of an ``ep``-way expert-parallel group runs (see module doc)."""
    ep = int(ep)
    check_degree(graph, ep)
    if ep == 1:
        return graph
    if not (imbalance >= 1.0 and math.isfinite(imbalance)):
        raise ExpertParallelError(f"--ep-imbalance must be a number >= 1 (max over mean rank load), got {imbalance}")
    out = WorkloadGraph(meta={**graph.meta, "ep": ep, "ep_imbalance": imbalance})
    nid = 0

    def a2a(src: Op, tensor: str, phase: str) -> Op:
        nbytes = dispatch_bytes(src, _elem(src))
        return Op(id=0, name="c10d::all_to_all", kind="collective", dtype=src.dtype,
                  reads=[Access(tensor, nbytes, "activation")], writes=[Access(tensor, nbytes, "activation")],
                  launches=1, module=src.module,
                  attrs={**Collective(kind="all_to_all", n_ranks=ep, bytes=nbytes).attrs(), "ep": ep, "ep_phase": phase},
                  device=src.device, stream=src.stream)

    for src in graph.ops:
        op = _copy(src, 0)
        if op.kind != "moe":
            op.id = nid
            nid += 1
            out.add(op)
            continue
        m = payload(op)
        e, k, tokens = int(m.num_experts), int(m.top_k), int(m.tokens)
        old = float(m.expected_experts)
        held = -(-e // ep)  # a degree that does not divide E fills the spare slots with redundant copies
        local = held * (1.0 - (1.0 - k / e) ** (tokens * ep))
        for acc in op.reads:
            if acc.role == "weight" and "experts" in acc.tensor:
                acc.bytes = int(round(acc.bytes * local / old)) if old > 0 else acc.bytes
        router = float(m.router_flops or 0.0)
        op.flops = {d: router + (f - router) * imbalance for d, f in op.flops.items()}
        store(op, replace(m, expected_experts=local))
        # what this rank holds and how its group shares the load: facts of the sharding, no payload's
        op.attrs.update(local_experts=held, ep=ep, ep_imbalance=imbalance,
                        group_expected_experts=expected_unique_experts(e, k, tokens * ep))
        h_in = next((x.tensor for x in op.reads if x.role == "activation"), f"moe_in@{op.id}")
        d = a2a(src, h_in, "dispatch")
        d.id = nid
        nid += 1
        out.add(d)
        op.id = nid
        nid += 1
        out.add(op)
        h_out = op.writes[0].tensor if op.writes else f"moe_out@{op.id}"
        c = a2a(src, h_out, "combine")
        c.id = nid
        nid += 1
        out.add(c)
    return out


def _elem(op: Op) -> int:
    """Bytes of one element of the hidden state the moe op reads."""
    m = payload(op)
    h_in = next((x for x in op.reads if x.role == "activation"), None)
    n = int(m.tokens) * int(m.hidden)
    return max(1, int(round(h_in.bytes / n))) if h_in is not None and n else 2
