"""Precision as a graph pass: a step traced in 16 bits rewritten for a ``Precision`` run
by a quantised kernel family (``workloads.quantkernels``).

``quantize(graph, precision, family)`` returns a new graph:

* **KV cache**: every ``kv_cache`` access (cache writes, attention reads) costs the KV
  format's bytes per element. Attention still computes in 16 bits (the kernel
  dequantises the cache as it loads it), so its FLOPs keep their label.
* **weights** read by matrix ops (``matmul``, ``gemv``, ``moe``; not biases, MoE routers,
  or ``lm_head`` unless the family quantises it) cost ``packed_bytes``: the packed
  elements plus one scale and one zero per group (``group_size`` weights along the
  input dimension; 0: one group per output channel; fp8 weights: one scale per channel).
* **fused path** (``family.fused(rows)``): the op keeps its place; its FLOPs are
  labelled with the format its kernel multiplies in (fp8 on fp8 tensor cores, 16-bit
  after in-register dequantisation); ``attrs`` carry ``quant`` (the family, whose
  efficiencies the cost model applies), ``math`` (``vector`` for CUDA-core kernels) and
  ``dequant_ops`` (vector operations spent unpacking weights: one dequantisation per
  ``rows_per_pass`` rows). With 8-bit activations a ``quant::quantize`` kernel before it
  reads each new input ``activation_quant_reads`` times and writes it in 8 bits, and the
  GEMM reads the 8-bit copy.
* **dequantise path** (more rows than the family fuses): a ``quant::dequantize`` kernel
  reads the packed weight and writes it whole in 16 bits (``dequant_kernel_ops`` per
  element); the GEMM then runs dense, reading that copy: the extra bytes of this path.
"""

from __future__ import annotations

import math

from .graph import WorkloadGraph
from .op import QUANTIZED_KINDS, Access, Op
from .payloads import Gemm, Moe, Quant, payload, store
from .precision import FLOATS, FORMAT_BYTES, GROUPED, Precision
from .quantkernels import Family, math_dtype

#: dequantised copies of weights and 8-bit copies of activations are named ``<tensor>@<what>``
DEQUANT_SUFFIX = "@deq"


def group_size(p: Precision, f: Family) -> int:
    """Weights per scale along the input dimension (0: one group per output channel)."""
    if p.weights not in GROUPED:
        return 0  # float8 weights carry per-channel (or per-tensor) scales, never groups
    return int(p.group_size if p.group_size is not None else (f.group.value or 0))


def packed_bytes(elems: float, p: Precision, f: Family, k: int | None) -> int:
    """Bytes of ``elems`` weights in ``p.weights`` with their scales and zeros.

    ``k`` is the input dimension (elements per output channel), used for per-channel
    groups; without it the tensor is one group.
    """
    g = group_size(p, f)
    per_group = (f.scale_bytes.value or 0.0) + (f.zero_bytes.value or 0.0)
    length = g if g > 0 else (k or elems)
    groups = math.ceil(elems / max(length, 1)) if elems else 0
    return int(math.ceil(elems * FORMAT_BYTES[p.weights] + groups * per_group))


def _is_lm_head(op: Op) -> bool:
    return op.module.rsplit(".", 1)[-1] == "lm_head"


def quantized_weights(op: Op, f: Family) -> list[Access]:
    """The weight reads of ``op`` the family stores quantised (module docstring)."""
    if op.kind not in QUANTIZED_KINDS or (_is_lm_head(op) and not f.quantizes_lm_head):
        return []
    return [a for a in op.reads if a.role == "weight" and not a.tensor.endswith(".bias")
            and not a.tensor.endswith(".gate.weight")]  # a MoE router is a tiny 16-bit GEMM


def _k(op: Op) -> int | None:
    p = payload(op)
    k = p.hidden if isinstance(p, Moe) else p.k if isinstance(p, Gemm) else None
    return int(k) if k else None


def _rows(op: Op) -> int:
    p = payload(op)
    if isinstance(p, Moe):
        return max(int(p.tokens or 1), 1)
    return max(p.rows, 1) if isinstance(p, Gemm) else 1


def weight_bytes(ops: list[Op], param_sizes: dict[str, tuple[int, int]], p: Precision, f: Family | None) -> int:
    """Bytes the parameters occupy: those a quantised kernel reads at their packed size."""
    if f is None:
        return int(sum(n * size for n, size in param_sizes.values()))
    k_of: dict[str, int | None] = {}
    for op in ops:
        for a in quantized_weights(op, f):
            k_of.setdefault(a.tensor, _k(op))
    total = 0
    for name, (n, size) in param_sizes.items():
        total += packed_bytes(n, p, f, k_of[name]) if name in k_of else n * size
    return int(total)


def _kv(a: Access, ratio: float) -> Access:
    return Access(a.tensor, int(math.ceil(a.bytes * ratio)), a.role) if a.role == "kv_cache" and ratio != 1 else \
        Access(a.tensor, a.bytes, a.role)


def quantize(graph: WorkloadGraph, p: Precision, f: Family | None) -> WorkloadGraph:
    """``graph`` (traced in ``p.float_dtype``) rewritten for ``p`` run by ``f`` (module docstring)."""
    fb = FORMAT_BYTES[p.float_dtype]
    kv_ratio = FORMAT_BYTES[p.kv_cache] / fb
    act8 = p.activations not in FLOATS
    out = WorkloadGraph(meta={**graph.meta, "dtype": str(p), "precision": p.as_dict(), "kv_dtype": p.kv_cache,
                              "quant_kernel": f.name if f is not None else None})
    quantized_acts: dict[str, str] = {}  # 16-bit activation -> its 8-bit copy, while still valid
    nid = 0

    def add(op: Op) -> None:
        nonlocal nid
        op.id = nid
        nid += 1
        out.add(op)
        for a in op.writes:
            quantized_acts.pop(a.tensor, None)

    for src in graph.ops:
        op = _copy(src, kv_ratio)
        weights = quantized_weights(op, f) if f is not None else []
        if not weights:
            add(op)
            continue
        k = _k(op)
        rows = _rows(op)
        qbytes = {a.tensor: packed_bytes(a.bytes / fb, p, f, k) for a in weights}
        if f.fused(rows):
            if act8:
                op.reads = [_quantized_input(a, op, p, f, quantized_acts, add) for a in op.reads]
            op.reads = [Access(a.tensor, qbytes[a.tensor], a.role) if a.tensor in qbytes else a for a in op.reads]
            total = sum(op.flops.values())
            op.flops = {math_dtype(f, p): total} if total else {}
            elems = sum(a.bytes / fb for a in weights)
            per_pass = max(int(f.rows_per_pass.value or 1), 1)
            ops_per = 0.0 if f.dequant == "none" else (f.dequant_ops.value or 0.0)
            store(op, Quant(family=f.name, path="fused", dequant_ops=elems * math.ceil(rows / per_pass) * ops_per,
                            weight_elem_bytes=sum(qbytes.values()) / elems if elems else None,
                            math="vector" if f.math == "vector" else None))
            add(op)
            continue
        # dequantise path: one kernel writes each weight in 16 bits, the GEMM reads that copy
        per_elem = (f.dequant_kernel_ops.value if f.dequant_kernel_ops else 0) or 0
        for a in weights:
            elems = a.bytes / fb
            copy = a.tensor + DEQUANT_SUFFIX
            # the unpacked tensor's name sits between the record's keys (the traced attrs order)
            add(Op(id=0, name="quant::dequantize", kind="elementwise", dtype=p.float_dtype,
                   reads=[Access(a.tensor, qbytes[a.tensor], "weight")], writes=[Access(copy, a.bytes, "output")],
                   module=op.module, device=op.device, stream=op.stream,
                   attrs={**Quant(family=f.name, path="dequantize").attrs(), "weight": a.tensor,
                          **Quant(dequant_ops=elems * per_elem).attrs()}))
        names = {a.tensor for a in weights}
        op.reads = [Access(a.tensor + DEQUANT_SUFFIX, a.bytes, "activation") if a.tensor in names else a
                    for a in op.reads]
        store(op, Quant(family=f.name, path="dequantized"))
        add(op)
    return out


def _quantized_input(a: Access, op: Op, p: Precision, f: Family, done: dict[str, str], add) -> Access:
    """The 8-bit copy of activation input ``a`` (made by a ``quant::quantize`` kernel once)."""
    if a.role != "activation":
        return a
    q = done.get(a.tensor)
    elems = a.bytes / FORMAT_BYTES[p.float_dtype]
    nbytes = int(math.ceil(elems * FORMAT_BYTES[p.activations]))
    if q is None:
        q = f"{a.tensor}@{p.activations}"
        reads_n = int(f.activation_quant_reads.value or 0)
        if reads_n:
            add(Op(id=0, name="quant::quantize", kind="elementwise", dtype=p.float_dtype,
                   reads=[Access(a.tensor, a.bytes * reads_n, "activation")], writes=[Access(q, nbytes, "output")],
                   module=op.module, device=op.device, stream=op.stream,
                   attrs=Quant(family=f.name, path="quantize", dequant_ops=elems * reads_n).attrs()))
        done[a.tensor] = q
    return Access(q, nbytes, "activation")


def _copy(op: Op, kv_ratio: float) -> Op:
    return Op(id=op.id, name=op.name, kind=op.kind, dtype=op.dtype, flops=dict(op.flops),
              reads=[_kv(a, kv_ratio) for a in op.reads], writes=[_kv(a, kv_ratio) for a in op.writes],
              launches=op.launches, shapes=[list(s) for s in op.shapes], module=op.module, updates=op.updates,
              distinct_targets=op.distinct_targets, unknown=op.unknown, attrs=dict(op.attrs), device=op.device,
              stream=op.stream)
