"""Trace any ``nn.Module`` into a ``WorkloadGraph`` on meta (or fake) tensors.

Two modes run together: a ``TorchFunctionMode`` catches framework-level fused ops
(``F.scaled_dot_product_attention``; ``F.rms_norm`` where the traced backend runs it as
one kernel, ``BACKEND_FUSED``) and records them as ONE op while the aten ops under them
run unrecorded; a ``TorchDispatchMode`` records every other aten op, costed by
``workloads.rules``. Forward pre/post hooks keep a stack of module paths, and leaf-module
rules (``workloads.leaves``) replace data-dependent blocks such as MoE routing.

Tensor identity is the storage (``untyped_storage()._cdata``): every view of a weight
maps to ``w:<param name>`` with role ``weight``; KV-cache storages are tagged ``kv:...``
with role ``kv_cache``; everything else is an activation ``a<n>``.

Each ``Op.shapes`` lists the shapes of the op's tensor inputs, then of its outputs.

``Tracer.on_aten`` hands each call to the cost formula its rule names
(``workloads.formulas``); the modes, hooks and ``trace`` around it share the tracer's state.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from . import formulas, rules
from .graph import WorkloadGraph
from .op import WEIGHT_MATRIX_KINDS, Access, Op
from .payloads import Attention
from .steps import DtypePolicy

#: framework functions a backend runs as one kernel although the tracing machine (CPU,
#: meta) decomposes them: the function and the aten op recorded in its place. PyTorch
#: 2.8 and later dispatch ``F.rms_norm`` on CUDA to ``_fused_rms_norm``; Hugging Face
#: models write their RMSNorm in Python and stay decomposed everywhere.
BACKEND_FUSED: dict[str, dict[Any, Any]] = {
    "cuda": {F.rms_norm: torch.ops.aten._fused_rms_norm.default},
}

DTYPE_LABELS = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float8_e4m3fn: "fp8",
    torch.float8_e5m2: "fp8",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.bool: "bool",
}


def dtype_label(dt: torch.dtype) -> str:
    return DTYPE_LABELS.get(dt, str(dt).replace("torch.", ""))


def weight_bytes(ops: list[Op], param_sizes: dict[str, tuple[int, int]], policy: DtypePolicy) -> int:
    """Bytes the parameters occupy: those read by matrix ops at the policy's bytes/element."""
    matrix = {a.tensor for op in ops if op.kind in WEIGHT_MATRIX_KINDS for a in op.reads if a.role == "weight"}
    total = 0.0
    for name, (n, size) in param_sizes.items():
        quantised = policy.weight_bytes is not None and name in matrix
        total += math.ceil(n * policy.weight_bytes) if quantised else n * size
    return int(total)


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _unique_elems(t: torch.Tensor) -> int:
    """Elements a kernel must touch: broadcast (stride-0) dimensions count once."""
    n = 1
    for s, st in zip(t.shape, t.stride(), strict=False):
        if st != 0:
            n *= s
    return n if t.dim() else 1


class Tracer:
    """Collects ops; one instance per trace."""

    def __init__(self, policy: DtypePolicy | None = None) -> None:
        self.policy = policy or DtypePolicy()
        self.ops: list[Op] = []
        self.names: dict[int, str] = {}
        self.roles: dict[str, str] = {}
        self._keep: list[Any] = []  # keeps storages alive so their keys are never reused
        self.suppress = 0
        self.stack: list[str] = [""]
        self.mod_stack: list[torch.nn.Module] = []
        self._n = 0
        #: attrs a workload declares for the next scatter op (e.g. distinct_targets on meta)
        self.scatter_hints: list[dict[str, int]] = []
        #: per-layer tensor facts for replication: module path -> (input names, output names)
        self.module_io: dict[str, tuple[list[str], list[str]]] = {}
        #: parameter name -> (elements, bytes per element as stored by torch)
        self.param_sizes: dict[str, tuple[int, int]] = {}

    # -- tensor names -----------------------------------------------------------------
    def tag(self, t: torch.Tensor, name: str, role: str) -> None:
        self.names[_storage_key(t)] = name
        self.roles[name] = role
        self._keep.append(t)

    def name(self, t: torch.Tensor) -> str:
        k = _storage_key(t)
        n = self.names.get(k)
        if n is None:
            n = f"a{self._n}"
            self._n += 1
            self.names[k] = n
            self.roles[n] = "activation"
            self._keep.append(t)
        return n

    def role(self, name: str) -> str:
        return self.roles.get(name, "activation")

    def nbytes(self, t: torch.Tensor, kind: str = "", elems: int | None = None) -> int:
        n = _unique_elems(t) if elems is None else elems
        name = self.name(t)
        if self.policy.weight_bytes is not None and kind in WEIGHT_MATRIX_KINDS and self.role(name) == "weight" \
                and t.dim() >= 2:
            return int(math.ceil(n * self.policy.weight_bytes))
        return n * t.element_size()

    def read(self, t: torch.Tensor, kind: str = "", elems: int | None = None) -> Access:
        n = self.name(t)
        return Access(n, self.nbytes(t, kind, elems), self.role(n))

    def write(self, t: torch.Tensor, elems: int | None = None) -> Access:
        n = self.name(t)
        role = self.role(n)
        return Access(n, self.nbytes(t, "", elems), "kv_cache" if role == "kv_cache" else "output")

    # -- recording --------------------------------------------------------------------
    def emit(self, name: str, kind: str, *, flops: dict[str, float] | None = None,
             reads: list[Access] = (), writes: list[Access] = (), dtype: str = "", **fields: Any) -> Op:
        op = Op(id=len(self.ops), name=name, kind=kind, dtype=dtype, flops=dict(flops or {}),
                reads=list(reads), writes=list(writes), module=self.stack[-1], **fields)
        self.ops.append(op)
        return op

    def flops_label(self, kind: str, dt: torch.dtype) -> str:
        if kind in WEIGHT_MATRIX_KINDS and self.policy.matmul_dtype:
            return self.policy.matmul_dtype
        return dtype_label(dt)

    def on_aten(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        packet = func.overloadpacket.__name__
        rule = rules.lookup(packet, tuple(func.tags))
        ins = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        outs = [x for x in tree_leaves(out) if isinstance(x, torch.Tensor)]
        shapes = [list(t.shape) for t in ins + outs]
        ref = outs[0] if outs else (ins[0] if ins else None)
        dt = ref.dtype if ref is not None else torch.float32
        if func.is_view or (rule is not None and rule.cost == "view"):
            for t in outs:  # a view of a named storage keeps its name; a fresh allocation is named now
                self.name(t)
            self.emit(str(func), "view", launches=0, shapes=shapes, dtype=dtype_label(dt))
            return

        mutated = self._mutated(func, args, kwargs)
        mut_keys = {_storage_key(t) for t in mutated}
        kind = rule.kind if rule else "unknown"
        # reads: each distinct input view once
        seen: set[tuple] = set()
        src_ins: list[torch.Tensor] = []
        for t in ins:
            if rule is not None and rule.overwrites and _storage_key(t) in mut_keys and t is mutated[0]:
                continue
            key = (_storage_key(t), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
            if key in seen:
                continue
            seen.add(key)
            src_ins.append(t)
        c = formulas.Call(self, packet, rule, args, kwargs, ins, outs, mutated, kind)
        if rule is not None:
            formulas.apply(c)
        kind, read_elems, write_elems = c.kind, c.read_elems, c.write_elems

        label = self.flops_label(kind, dt)
        reads = [self.read(t, kind, read_elems.get(id(t))) for t in src_ins]
        reads = [a for a in reads if a.bytes or not read_elems]
        writes = [self.write(t, write_elems.get(id(t))) for t in mutated]
        for t in outs:
            if _storage_key(t) not in mut_keys:
                writes.append(self.write(t))
        if rule is None:
            c.attrs["reason"] = "no cost rule"
        self.emit(str(func), kind, flops={label: c.flops} if c.flops else {}, reads=reads, writes=writes,
                  shapes=shapes, attrs=c.attrs, unknown=rule is None, updates=c.updates,
                  distinct_targets=c.distinct, dtype=dtype_label(dt))

    @staticmethod
    def _mutated(func: Any, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        out = []
        for i, a in enumerate(func._schema.arguments):
            if a.alias_info is not None and a.alias_info.is_write:
                v = args[i] if i < len(args) else kwargs.get(a.name)
                if isinstance(v, torch.Tensor):
                    out.append(v)
        return out

    def on_sdpa(self, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        p = dict(zip(names, args, strict=False))
        p.update(kwargs)
        q, k, v = p["query"], p["key"], p["value"]
        mask = p.get("attn_mask")
        att = Attention(**rules.attention_attrs(list(q.shape), list(k.shape), list(v.shape)),
                        causal=bool(p.get("is_causal", False)), mask=isinstance(mask, torch.Tensor))
        a = att.attrs()
        ins = [q, k, v] + ([mask] if a["mask"] else [])
        reads = [self.read(t, "attention") for t in ins]
        self.emit("aten::scaled_dot_product_attention", "attention",
                  flops={self.flops_label("attention", q.dtype): rules.attention_flops(att)},
                  reads=reads, writes=[self.write(out)], shapes=[list(t.shape) for t in ins + [out]],
                  attrs=a, dtype=dtype_label(q.dtype))


class _Dispatch(TorchDispatchMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.t = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.t.suppress:
            self.t.on_aten(func, args, kwargs, out)
        return out


class _Function(TorchFunctionMode):
    def __init__(self, tracer: Tracer, backend: str | None = None) -> None:
        super().__init__()
        self.t = tracer
        self.fused = BACKEND_FUSED.get(backend or "", {})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fused = self.fused.get(func)
        if (func is F.scaled_dot_product_attention or fused is not None) and not self.t.suppress:
            self.t.suppress += 1
            try:
                out = func(*args, **kwargs)
            finally:
                self.t.suppress -= 1
            if fused is None:
                self.t.on_sdpa(args, kwargs, out)
            else:
                self.t.on_aten(fused, args, kwargs, out)
            return out
        return func(*args, **kwargs)


def _install_hooks(model: torch.nn.Module, tracer: Tracer, leaf_rules: dict) -> list:
    handles = []
    for path, mod in model.named_modules():
        def pre(m, args, kwargs, path=path):
            tracer.stack.append(path)
            tracer.mod_stack.append(m)
            names = [tracer.name(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            tracer.module_io.setdefault(path, (names, []))

        def post(m, args, kwargs, out, path=path):
            outs = [tracer.name(t) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            ins = tracer.module_io.get(path, ([], []))[0]
            tracer.module_io[path] = (ins, outs)
            tracer.stack.pop()
            tracer.mod_stack.pop()

        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post, with_kwargs=True))
        rule = leaf_rules.get(type(mod).__name__)
        if rule is not None:
            restore = _Restore(mod, mod.forward)

            def forward(*a, _m=mod, _rule=rule, **kw):
                return _rule(tracer, _m, *a, **kw)

            mod.forward = forward
            handles.append(restore)
    return handles


class _Restore:
    def __init__(self, mod: torch.nn.Module, orig: Any) -> None:
        self.mod, self.orig = mod, orig
        self.own = "forward" in mod.__dict__

    def remove(self) -> None:
        if self.own:
            self.mod.forward = self.orig
        else:
            del self.mod.forward


def tag_module(tracer: Tracer, model: torch.nn.Module) -> None:
    """Name every parameter and buffer ``w:<name>`` with role weight (tied weights once)."""
    for n, p in model.named_parameters():
        tracer.tag(p, f"w:{n}", "weight")
        tracer.param_sizes[f"w:{n}"] = (p.numel(), p.element_size())
    for n, b in model.named_buffers():
        if _storage_key(b) not in tracer.names:
            tracer.tag(b, f"w:{n}", "weight")


def run_traced(model: torch.nn.Module, args: tuple = (), kwargs: dict | None = None, *,
               tracer: Tracer | None = None, leaf_rules: dict | None = None,
               backend: str | None = None) -> tuple[Tracer, Any]:
    """Run ``model(*args, **kwargs)`` under the tracer; returns the tracer and the output.
    ``backend`` (``cuda``) records the functions it fuses as one op (``BACKEND_FUSED``)."""
    from .leaves import LEAF_RULES

    tracer = tracer or Tracer()
    tag_module(tracer, model)
    handles = _install_hooks(model, tracer, LEAF_RULES if leaf_rules is None else leaf_rules)
    try:
        with torch.no_grad(), _Function(tracer, backend), _Dispatch(tracer):
            out = model(*args, **(kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    return tracer, out


def trace(module: torch.nn.Module, example_inputs: Any = (), *, meta: dict | None = None,
          policy: DtypePolicy | None = None, leaf_rules: dict | None = None,
          backend: str | None = None) -> WorkloadGraph:
    """Trace one forward call of ``module`` into a ``WorkloadGraph``.

    ``example_inputs`` is a tuple of positional arguments, a dict of keyword arguments, or a
    single tensor. Tensors are used as given: put the module and inputs on ``meta`` for a
    weight-free trace (``workloads.build`` does), or on CPU to let scatters see real indices.
    The final outputs are marked role ``output``. ``backend`` names the device kind whose
    kernels the trace should follow where it differs from the tracing machine's
    (``BACKEND_FUSED``); by default ops are recorded as this machine dispatches them.
    """
    if isinstance(example_inputs, dict):
        args, kwargs = (), example_inputs
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}
    tracer, _ = run_traced(module, args, kwargs, tracer=Tracer(policy), leaf_rules=leaf_rules, backend=backend)
    g = WorkloadGraph(meta=meta)
    g.extend(tracer.ops)
    return g
