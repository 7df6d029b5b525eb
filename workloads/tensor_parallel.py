"""Megatron-style tensor parallelism as a graph transform: one device's share of a step.

``shard(graph, n)`` returns the graph one of ``n`` symmetric devices runs:

* **column-parallel** projections (q/k/v, gate/up, fused qkv, ``lm_head``): each device
  holds ``1/n`` of the output features: weight bytes, FLOPs and output bytes ``/ n``,
  the input is replicated. Its ``Gemm`` payload's ``n`` is divided.
* **row-parallel** projections (attention output, MLP down) that read a sharded
  activation: each device holds ``1/n`` of the input features: weight bytes, FLOPs and input bytes ``/ n``; the output is a
  full-size partial sum, so an ``all_reduce`` collective follows it.
* **attention**: heads and KV heads split: every byte and FLOP ``/ n``, ``h`` and
  ``kv_heads`` divided. KV-cache tensors are sharded wherever they appear.
* **in between**: an op reading a sharded activation (rotary embedding on local heads,
  the gated activation on the local intermediate slice) works on ``1/n`` of it: its
  activation bytes and FLOPs ``/ n``, and what it writes is sharded too. Everything
  else (embeddings, norms, residual adds) is replicated, as in Megatron without
  sequence parallelism.
* **mixture of experts** (one ``moe`` op): each expert's FFN is split the same way, so
  expert weights, FLOPs and its record's ``intermediate`` width ``/ n``, and an ``all_reduce``
  follows.
* ``lm_head`` is column-parallel; an ``all_gather`` of the logits follows it.
* **quantised kernels** (``workloads.quantize``): a dequantise kernel unpacks this
  device's shard of its weight, and the GEMM after it reads that shard's 16-bit copy;
  dequantisation work scales with the FLOPs.

Which module names are which is data (``COLUMN``, ``ROW``, ``GATHER_AFTER``), matched on
the last component of ``Op.module``. Collectives carry ``attrs`` ``{"collective", "n",
"bytes"}``: the message size in bytes and the group size, which the cost model times on
``system.interconnect`` with ``hw_models.physics.collective_time``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .errors import WorkloadError
from .graph import WorkloadGraph
from .op import GEMM_KINDS, Access, Op
from .payloads import Collective, Moe, payload, quant, store

#: module-name suffixes whose weight is split along output features
COLUMN = frozenset({
    "q_proj", "k_proj", "v_proj", "qkv_proj", "query_key_value", "c_attn", "query", "key", "value",
    "gate_proj", "up_proj", "gate_up_proj", "w1", "w3", "fc1", "c_fc", "dense_h_to_4h", "lm_head",
})
#: module-name suffixes whose weight is split along input features (an all-reduce follows)
ROW = frozenset({"o_proj", "out_proj", "down_proj", "w2", "fc2", "dense_4h_to_h", "c_proj", "dense"})
#: column-parallel modules whose sharded output must be gathered again (vocab-split logits)
GATHER_AFTER = frozenset({"lm_head"})


class TensorParallelError(WorkloadError):
    """A tensor-parallel degree the model cannot be split by."""


def check_degree(graph: WorkloadGraph, n: int) -> None:
    """Raise (user-facing, one line) unless ``n`` divides the model's heads and KV heads."""
    if n < 1:
        raise TensorParallelError(f"tensor-parallel degree must be >= 1, got {n}")
    cfg = graph.meta.get("config") or {}
    heads, kv = cfg.get("heads"), cfg.get("kv_heads") or cfg.get("heads")
    if heads and kv and (heads % n or kv % n):
        raise TensorParallelError(
            f"tensor-parallel degree {n} must divide both the {heads} attention heads and the {kv} KV heads "
            f"of {graph.meta.get('model', 'this model')}"
        )


def _split(b: int, n: int) -> int:
    return int(math.ceil(b / n))


def _heads(h: int | None, n: int) -> int | None:
    """A head count split ``n`` ways (at least one head each); unstated or 0 stays as it is."""
    return max(1, int(h) // n) if h else h


def _suffix(module: str) -> str:
    return (module or "").rsplit(".", 1)[-1]


def _copy(op: Op, new_id: int) -> Op:
    return Op(
        id=new_id, name=op.name, kind=op.kind, dtype=op.dtype, flops=dict(op.flops),
        reads=[Access(a.tensor, a.bytes, a.role) for a in op.reads],
        writes=[Access(a.tensor, a.bytes, a.role) for a in op.writes],
        launches=op.launches, shapes=[list(s) for s in op.shapes], module=op.module, updates=op.updates,
        distinct_targets=op.distinct_targets, unknown=op.unknown, attrs=dict(op.attrs), device=op.device,
        stream=op.stream,
    )


def _collective(new_id: int, kind: str, tensor: str, nbytes: int, n: int, src: Op) -> Op:
    return Op(
        id=new_id, name=f"c10d::{kind}", kind="collective", dtype=src.dtype,
        reads=[Access(tensor, nbytes, "activation")], writes=[Access(tensor, nbytes, "activation")],
        launches=1, module=src.module, attrs={**Collective(kind=kind, n_ranks=n, bytes=nbytes).attrs(), "tp": n},
        device=src.device, stream=src.stream,
    )


def shard(graph: WorkloadGraph, n: int) -> WorkloadGraph:
    """The graph one device of an ``n``-way tensor-parallel group runs (see module doc)."""
    n = int(n)
    check_degree(graph, n)
    if n == 1:
        return graph
    out = WorkloadGraph(meta={**graph.meta, "tp": n})
    sharded: set[str] = set()  # activation tensors each device holds 1/n of
    dequantized: set[str] = set()  # 16-bit copies of weight shards (workloads.quantize)
    nid = 0
    for src in graph.ops:
        op = _copy(src, nid)
        nid += 1
        suf = _suffix(op.module)
        after: list[Op] = []
        scale_flops = False
        q = quant(op)
        if q is not None and q.path == "dequantize":
            # a dequantise kernel unpacks this device's shard of the weight only
            mode = "weight"
            scale_flops = True
            for a in op.reads + op.writes:
                a.bytes = _split(a.bytes, n)
            dequantized.update(a.tensor for a in op.writes)
        elif op.kind in GEMM_KINDS and suf in COLUMN:
            mode = "column"
            scale_flops = True
            for a in op.reads:
                if a.role in ("weight", "kv_cache") or a.tensor in dequantized:
                    a.bytes = _split(a.bytes, n)
            for a in op.writes:
                a.bytes = _split(a.bytes, n)
                sharded.add(a.tensor)
            g = payload(op)
            if g is not None:
                store(op, replace(g, n=_split(int(g.n), n)))
            if suf in GATHER_AFTER:
                for a in op.writes:
                    after.append(_collective(0, "all_gather", a.tensor, a.bytes * n, n, op))
                    sharded.discard(a.tensor)
        elif (op.kind in GEMM_KINDS and suf in ROW and any(a.tensor in sharded for a in op.reads)) or op.kind == "moe":
            mode = "row"
            scale_flops = True
            for a in op.reads:
                if a.role in ("weight", "kv_cache") or a.tensor in sharded or a.tensor in dequantized:
                    a.bytes = _split(a.bytes, n)
            g = payload(op)
            if isinstance(g, Moe):
                # each expert's FFN splits as a dense one does: the shard holds 1/n of its width
                if g.intermediate:
                    store(op, replace(g, intermediate=_split(int(g.intermediate), n)))
            elif g is not None:
                store(op, replace(g, k=_split(int(g.k), n)))
            for a in op.writes:
                sharded.discard(a.tensor)
                after.append(_collective(0, "all_reduce", a.tensor, a.bytes, n, op))
        elif op.kind == "attention":
            mode = "heads"
            scale_flops = True
            for a in op.reads + op.writes:
                a.bytes = _split(a.bytes, n)
            for a in op.writes:
                sharded.add(a.tensor)
            att = payload(op)
            if att is not None:
                store(op, replace(att, h=_heads(att.h, n), kv_heads=_heads(att.kv_heads, n)))
        elif any(a.tensor in sharded or a.role == "kv_cache" for a in op.reads) or any(
            a.role == "kv_cache" for a in op.writes
        ):
            mode = "local"
            scale_flops = True
            for a in op.reads + op.writes:
                if a.role != "weight" or a.tensor in sharded:
                    a.bytes = _split(a.bytes, n)
            for a in op.writes:
                sharded.add(a.tensor)
            if op.kind == "scatter":
                op.updates = _split(op.updates, n)
                op.distinct_targets = _split(op.distinct_targets, n)
        else:
            mode = "replicated"
            for a in op.writes:
                sharded.discard(a.tensor)
        if scale_flops:
            op.flops = {k: v / n for k, v in op.flops.items()}
            if q is not None and q.dequant_ops:
                store(op, replace(q, dequant_ops=float(q.dequant_ops) / n))
        op.attrs["tp"] = n
        op.attrs["tp_shard"] = mode
        out.add(op)
        for c in after:
            c.id = nid
            nid += 1
            out.add(c)
    return out
