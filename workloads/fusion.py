"""Kernel fusion as a graph pass: what real execution engines launch instead of eager's op stream.

``fuse(graph, policy)`` returns a new ``WorkloadGraph`` of the kernels a runtime would
launch for the same step. It conserves FLOPs and never adds bytes: a fused kernel reads
its group's external inputs once and writes only the tensors someone outside the group
reads (or that persist: KV cache, the step's outputs); intermediates stay on chip.

Policies (``POLICIES``, a registry: ``register_policy`` adds one):

* ``none``: the traced stream unchanged (eager PyTorch / Hugging Face).
* ``compile``: what torch.compile's Inductor does: chains of pointwise ops, reductions,
  norms, copies and KV-cache writes fuse into one kernel per group (residual add +
  RMSNorm, rotary on q and k, SiLU·mul); GEMMs and SDPA stay library kernels.
* ``serving``: what serving engines (vLLM, TensorRT-LLM, SGLang) ship: the ``compile``
  groups, plus sibling projections that read the same input fused into one GEMM (QKV,
  gate-up), and the KV-cache write as its own kernel (``reshape_and_cache``); attention
  is one flash/paged kernel (SDPA is already one op).
* ``gpt-fast``: the ``compile`` kernels of the model gpt-fast (and torchao, which runs its
  code) writes by hand: one ``wqkv`` projection for q, k and v, gate and up kept apart
  (``w1``, ``w3``).

Kernels per Llama decoder layer, from a traced Llama-3.1-8B decode step (a test counts
them by hand): ``none`` 39, ``compile`` 12, ``gpt-fast`` 10, ``serving`` 10.

Grouping: fusible ops (``FUSIBLE``) joined by producer -> consumer edges, and fusible ops
adjacent in program order (horizontal fusion), form one kernel, placed where its last
member was. A join that would make an op outside the group read a tensor before the
group produces it is refused, so program order stays valid. A fused kernel is named
after the pattern it matches (``PATTERNS``, data): ``fused::rms_norm``,
``fused::rotary``, ``fused::act_mul``, ... so the cost model's per-kind curves see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .errors import WorkloadError
from .graph import WorkloadGraph
from .kinds import kind_set
from .op import GEMM_KINDS, Access, Op
from .payloads import payload

#: op kinds a pointwise/reduction fuser can put in one kernel (``OpKind.fusible``)
FUSIBLE = kind_set("fusible")

#: (fused name, kind, ops the group must contain): first match wins; aten base names
PATTERNS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("rms_norm", "norm", frozenset({"mean", "rsqrt"})),
    ("rms_norm", "norm", frozenset({"rms_norm"})),
    ("rms_norm", "norm", frozenset({"_fused_rms_norm"})),
    ("layer_norm", "norm", frozenset({"native_layer_norm"})),
    ("layer_norm", "norm", frozenset({"layer_norm"})),
    ("layer_norm", "norm", frozenset({"var_mean"})),
    ("softmax", "softmax", frozenset({"_softmax"})),
    ("softmax", "softmax", frozenset({"_safe_softmax"})),
    ("rotary", "elementwise", frozenset({"neg", "cat"})),
    ("act_mul", "elementwise", frozenset({"silu", "mul"})),
    ("act_mul", "elementwise", frozenset({"gelu", "mul"})),
)


class FusionError(WorkloadError):
    """An unknown fusion policy (one line, user-facing)."""


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    #: which ops may join a pointwise group
    fusible: Callable[[Op], bool]
    #: which sibling projections (reading the same input) become one GEMM: ``qkv`` (an
    #: attention's q/k/v), ``gate_up`` (an MLP's gate and up), ``other`` (any other set)
    merge_siblings: frozenset[str] = frozenset()
    #: the engine's runtime all-reduces small messages with its own one-shot kernel (read by
    #: the simulator where a tensor-parallel step's collectives are priced)
    custom_allreduce: bool = False


def _base(op: Op) -> str:
    name = op.name.split("::")[-1]
    parts = name.split(".")
    if len(parts) > 1 and parts[0] in ("aten", "prims", "torch"):
        parts = parts[1:]
    return parts[0].rstrip("_") if parts and parts[0] != "_" else name


def _writes_kv(op: Op) -> bool:
    return any(a.role == "kv_cache" for a in op.writes)


POLICIES: dict[str, Policy] = {}


def register_policy(policy: Policy) -> None:
    POLICIES[policy.name] = policy


register_policy(Policy("none", "the traced kernel stream unchanged (eager PyTorch)", lambda op: False))
register_policy(Policy("compile", "torch.compile/Inductor: pointwise, reduction, norm and copy chains fuse; "
                       "GEMMs and SDPA stay library kernels", lambda op: op.kind in FUSIBLE))
register_policy(Policy("serving", "serving engines: fused QKV and gate-up GEMMs, fused add+RMSNorm, act*mul and "
                       "rotary kernels, KV-cache write and flash/paged attention kernels",
                       lambda op: op.kind in FUSIBLE and not _writes_kv(op), merge_siblings=frozenset({"qkv", "gate_up", "other"}),
                       custom_allreduce=True))
register_policy(Policy("gpt-fast", "gpt-fast / torchao: torch.compile kernels of a model with one wqkv projection "
                       "(gate and up stay apart)", lambda op: op.kind in FUSIBLE, merge_siblings=frozenset({"qkv"})))


def policy(name: str) -> Policy:
    p = POLICIES.get(name)
    if p is None:
        raise FusionError(f"unknown fusion policy {name!r}; known: {', '.join(POLICIES)}")
    return p


# -- grouping ---------------------------------------------------------------------------------


class _Groups:
    """Union-find over op positions, with each group's last position."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.last = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb
            self.last[rb] = max(self.last[ra], self.last[rb])


def _pointwise_groups(ops: list[Op], pol: Policy) -> _Groups:
    n = len(ops)
    fus = [pol.fusible(op) for op in ops]
    writer: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    producers: list[list[int]] = []
    for i, op in enumerate(ops):
        producers.append(sorted({writer[a.tensor] for a in op.reads if a.tensor in writer}))
        for a in op.reads:
            readers.setdefault(a.tensor, []).append(i)
        for a in op.writes:
            writer[a.tensor] = i
    outs = [[a.tensor for a in op.writes] for op in ops]
    g = _Groups(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}

    def safe(ra: int, rb: int) -> bool:
        # every reader outside the merged group of any member's output must come after its last member
        group = set(members[ra]) | set(members[rb])
        last = max(g.last[ra], g.last[rb])
        for i in group:
            for t in outs[i]:
                for r in readers.get(t, ()):
                    if r not in group and r <= last and r > i:
                        return False
        return True

    def join(a: int, b: int) -> None:
        ra, rb = g.find(a), g.find(b)
        if ra == rb or not safe(ra, rb):
            return
        g.union(ra, rb)
        root = g.find(rb)
        other = ra if root == rb else rb
        members[root] = members.get(root, []) + members.pop(other, [])

    for i in range(n):
        if not fus[i]:
            continue
        for p in producers[i]:
            if fus[p]:
                join(p, i)  # vertical: a producer into its consumer
        if i and fus[i - 1]:
            join(i - 1, i)  # horizontal: neighbours in program order
    return g


def _sibling_kind(suffixes: set[str]) -> str:
    """``qkv``, ``gate_up`` or ``other``: what a set of sibling projections is, by module name."""
    if suffixes & {"q_proj", "k_proj", "v_proj"}:
        return "qkv"
    return "gate_up" if suffixes & {"gate_proj", "up_proj", "w1", "w3"} else "other"


def _siblings(ops: list[Op], kinds: frozenset[str]) -> dict[int, list[int]]:
    """position of the first of a set of projections reading the same input -> all of them.

    Projections (``matmul``/``gemv`` with a weight) that read the same activation with the
    same ``m`` and ``k`` and sit in the same module parent (q/k/v of one attention, gate/up
    of one MLP), with only views between, become one GEMM where ``kinds`` holds their
    ``_sibling_kind``.
    """
    out: dict[int, list[int]] = {}
    i = 0
    while i < len(ops):
        op = ops[i]
        key = _proj_key(op)
        if key is None:
            i += 1
            continue
        group = [i]
        j = i + 1
        while j < len(ops):
            nxt = ops[j]
            if nxt.kind == "view" or (nxt.kind in FUSIBLE and nxt.launches and _reads_only(nxt, ops, group)):
                j += 1
                continue
            if _proj_key(nxt) == key:
                group.append(j)
                j += 1
                continue
            break
        if len(group) > 1 and _sibling_kind({ops[j].module.rsplit(".", 1)[-1] for j in group}) in kinds:
            out[i] = group
        i = group[-1] + 1
    return out


def _reads_only(op: Op, ops: list[Op], group: list[int]) -> bool:
    """A pointwise op between siblings that only consumes earlier siblings' outputs (SiLU
    on gate before up): it can run after the merged GEMM."""
    made = {a.tensor for g in group for a in ops[g].writes}
    return all(a.tensor in made or a.role == "weight" for a in op.reads)


def _proj_key(op: Op):
    if op.kind not in GEMM_KINDS or not any(a.role == "weight" for a in op.reads):
        return None
    act = [a.tensor for a in op.reads if a.role != "weight"]
    g = payload(op)
    parent = op.module.rsplit(".", 1)[0] if "." in op.module else op.module
    return (tuple(act), *((g.m, g.k, g.batch) if g else (None,) * 3), op.dtype, parent, op.device, op.stream)


# -- building fused ops --------------------------------------------------------------------------


def _fused_op(members: list[Op], new_id: int, outside_reads: set[str], kind_name: tuple[str, str] | None) -> Op:
    """One kernel for ``members``: their external inputs once, the outputs read outside
    (``outside_reads``) and any KV-cache writes; FLOPs summed."""
    made: dict[str, Access] = {}
    reads: dict[str, Access] = {}
    flops: dict[str, float] = {}
    for op in members:
        for a in op.reads:
            if a.tensor not in made:
                r = reads.get(a.tensor)
                if r is None or a.bytes > r.bytes:
                    reads[a.tensor] = Access(a.tensor, a.bytes, a.role)
        for a in op.writes:
            made[a.tensor] = Access(a.tensor, a.bytes, a.role)
        for k, v in op.flops.items():
            flops[k] = flops.get(k, 0.0) + v
    writes = [a for t, a in made.items() if t in outside_reads or a.role == "kv_cache"]
    first = next((op for op in members if op.kind != "view"), members[0])
    name, kind = kind_name or (first.name, first.kind)
    launches = 1 if any(op.launches for op in members) else 0
    return Op(id=new_id, name=name, kind=kind if launches else "view", dtype=first.dtype, flops=flops,
              reads=list(reads.values()), writes=writes, launches=launches, shapes=[],
              module=first.module, unknown=any(op.unknown for op in members),
              attrs={"fused": [_base(op) for op in members if op.kind != "view"]}, device=first.device,
              stream=first.stream)


def _pattern(members: list[Op]) -> tuple[str, str] | None:
    names = {_base(op) for op in members if op.kind != "view"}
    if len(names) == 0:
        return None
    for fused, kind, need in PATTERNS:
        if need <= names:
            return f"fused::{fused}", kind
    real = [op for op in members if op.kind != "view"]
    if len(real) == 1:
        return real[0].name, real[0].kind
    if any(op.kind == "reduction" for op in real):
        return "fused::reduction", "reduction"
    if all(_writes_kv(op) or op.kind == "copy" for op in real) and any(_writes_kv(op) for op in real):
        return "kv_cache_write", "copy"
    return "fused::pointwise", "elementwise"


def _merged_gemm(members: list[Op], new_id: int) -> Op:
    first = members[0]
    reads: dict[str, Access] = {}
    writes: list[Access] = []
    flops: dict[str, float] = {}
    n = 0
    for op in members:
        for a in op.reads:
            if a.tensor not in reads:
                reads[a.tensor] = Access(a.tensor, a.bytes, a.role)
        writes += [Access(a.tensor, a.bytes, a.role) for a in op.writes]
        for k, v in op.flops.items():
            flops[k] = flops.get(k, 0.0) + v
        g = payload(op)
        n += int(g.n or 0) if g else 0
    # the siblings share m, k and batch (``_proj_key``); their outputs side by side are one N
    g = payload(first)
    shape = replace(g, n=n).attrs() if g else {"n": n}
    attrs = {**first.attrs, **shape, "fused": [op.module.rsplit(".", 1)[-1] for op in members]}
    parent = first.module.rsplit(".", 1)[0]
    suffixes = {op.module.rsplit(".", 1)[-1] for op in members}
    merged = {"qkv": "qkv_proj", "gate_up": "gate_up_proj"}.get(_sibling_kind(suffixes), "merged_proj")
    return Op(id=new_id, name=f"fused::{'+'.join(sorted(suffixes))}", kind=first.kind, dtype=first.dtype,
              flops=flops, reads=list(reads.values()), writes=writes, launches=1, shapes=[],
              module=f"{parent}.{merged}", attrs=attrs, device=first.device, stream=first.stream)


def fuse(graph: WorkloadGraph, policy_name: str = "none") -> WorkloadGraph:
    """The kernels ``policy_name`` launches for ``graph`` (see the module docstring)."""
    pol = policy(policy_name)
    if pol.name == "none":
        return graph
    ops = list(graph.ops)
    # 1. sibling projections -> one GEMM (policies with merge_siblings): replace them in place by the merged op
    if pol.merge_siblings:
        sib = _siblings(ops, pol.merge_siblings)
        if sib:
            drop = {j for g in sib.values() for j in g[1:]}
            merged: list[Op] = []
            for i, op in enumerate(ops):
                if i in sib:
                    merged.append(_merged_gemm([ops[j] for j in sib[i]], op.id))
                elif i not in drop:
                    merged.append(op)
            ops = merged
    # 2. pointwise groups
    groups = _pointwise_groups(ops, pol)
    by_root: dict[int, list[int]] = {}
    for i in range(len(ops)):
        if pol.fusible(ops[i]):
            by_root.setdefault(groups.find(i), []).append(i)
    last_of = {max(m): m for m in by_root.values()}
    in_group = {i for m in by_root.values() for i in m}
    readers: dict[str, set[int]] = {}
    for i, op in enumerate(ops):
        for a in op.reads:
            readers.setdefault(a.tensor, set()).add(i)
    graph_outputs = _never_read(ops)
    out = WorkloadGraph(meta={**graph.meta, "fusion": pol.name})
    nid = 0
    for i, op in enumerate(ops):
        if i in in_group and i not in last_of:
            continue
        if i in last_of:
            members_ix = last_of[i]
            mem = set(members_ix)
            outside = {t for j in members_ix for a in ops[j].writes
                       for t in [a.tensor] if (readers.get(t, set()) - mem) or t in graph_outputs}
            fused = _fused_op([ops[j] for j in members_ix], nid, outside, _pattern([ops[j] for j in members_ix]))
            if fused.launches == 0 and not fused.reads and not fused.writes:
                continue
            out.add(fused)
        else:
            out.add(_renumber(op, nid))
        nid += 1
    return out


def _never_read(ops: list[Op]) -> set[str]:
    read = {a.tensor for op in ops for a in op.reads}
    return {a.tensor for op in ops for a in op.writes if a.tensor not in read}


def _renumber(op: Op, new_id: int) -> Op:
    return Op(id=new_id, name=op.name, kind=op.kind, dtype=op.dtype, flops=dict(op.flops),
              reads=[Access(a.tensor, a.bytes, a.role) for a in op.reads],
              writes=[Access(a.tensor, a.bytes, a.role) for a in op.writes], launches=op.launches,
              shapes=[list(s) for s in op.shapes], module=op.module, updates=op.updates,
              distinct_targets=op.distinct_targets, unknown=op.unknown, attrs=dict(op.attrs), device=op.device,
              stream=op.stream)


def kernels_per_layer(graph: WorkloadGraph, layer: int = 1) -> int:
    """Kernel launches of one decoder layer (ops whose module is under ``layers.<layer>``)."""
    tag = f".layers.{layer}."
    return sum(op.launches for op in graph.ops if tag in f"{op.module}.")
