"""Measured cases as data: an op family, named dimensions, a dtype and parameters.

``Case.make(device)`` builds the torch callable and its (random, never zero) inputs, so
the harness times it and the tracer can trace exactly the same callable on ``meta``
(``Case.module(device)`` wraps it in a tiny ``nn.Module``). ``Case.work()`` gives the
compulsory FLOPs and bytes the work implies, recorded beside each measurement.

Only torch and the stdlib here: this runs on a bare GPU box.

Why one long module: one short builder per measured op family plus ``_work``, the
FLOPs and bytes each family implies, side by side so that what is timed and what it
is credited with are read together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ELEMENT_SIZE = {"fp32": 4, "bf16": 2, "fp16": 2}

#: the op kind (workloads.op.KINDS) each family's rows are costed as
KIND_OF_FAMILY = {
    "bandwidth": "copy",
    "matmul": "matmul",
    "gemv": "gemv",
    "elementwise": "elementwise",
    "reduction": "reduction",
    "norm": "norm",
    "softmax": "softmax",
    "attention": "attention",
    "scatter": "scatter",
    "dispatch": "dispatch",
    "graph": "graph",
    "transfer": "transfer",
    "model": "model",
    "framework": "framework",
    "linear": "matmul",
    "rotary": "elementwise",
    "gather": "gather",
    "collective": "collective",
}


@dataclass(frozen=True)
class Case:
    family: str
    op: str
    shape: dict[str, int]
    dtype: str = "fp32"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.family == "bandwidth":
            return "reduction" if self.op == "read" else "copy"
        return KIND_OF_FAMILY[self.family]

    @property
    def id(self) -> str:
        dims = "x".join(f"{k}{v}" for k, v in self.shape.items())
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.family}/{self.op}/{self.dtype}/{dims}" + (f"/{extra}" if extra else "")

    def seed(self) -> int:
        return int(hashlib.sha256(self.id.encode()).hexdigest()[:8], 16)

    def shape_json(self) -> str:
        return json.dumps(self.shape)

    def make(self, device: str) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        try:
            builder = _BUILDERS[self.family]
        except KeyError:
            raise ValueError(f"no builder for case family {self.family!r}") from None
        gen = torch.Generator(device="cpu").manual_seed(self.seed())
        return builder(self, device, gen)

    def module(self, device: str) -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
        """The same work as an ``nn.Module`` plus args, for ``workloads.trace(module, args, kwargs)``."""
        fn, args = self.make(device)
        if isinstance(fn, torch.nn.Module):
            return fn, args, {}
        return _FnModule(fn), args, {}

    def work(self) -> dict[str, float]:
        return _work(self)


class _FnModule(torch.nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


# -- inputs --------------------------------------------------------------------------


def _rand(gen: torch.Generator, shape: tuple[int, ...], dtype: str, device: str) -> torch.Tensor:
    if device == "meta":  # tracing needs shapes, not values: drawing them would cost more than the trace
        return torch.empty(shape, dtype=DTYPES[dtype], device="meta")
    # drawn on the CPU from a seeded generator, so every device sees the same values
    t = torch.randn(shape, generator=gen, dtype=torch.float32)
    t = t.to(DTYPES[dtype])
    return t.to(device)


# -- builders ------------------------------------------------------------------------


def _bandwidth(c: Case, device: str, gen: torch.Generator):
    n = c.shape["n"]
    x = _rand(gen, (n,), c.dtype, device)
    if c.op == "read":
        return torch.sum, (x,)
    if c.op == "copy":
        dst = _rand(gen, (n,), c.dtype, device)
        return (lambda d, s: d.copy_(s)), (dst, x)
    raise ValueError(f"unknown bandwidth op {c.op!r}")


def _matmul(c: Case, device: str, gen: torch.Generator):
    m, n, k = c.shape["m"], c.shape["n"], c.shape["k"]
    a = _rand(gen, (m, k), c.dtype, device)
    b = _rand(gen, (k, n), c.dtype, device)
    return torch.mm, (a, b)


def _linear(c: Case, device: str, gen: torch.Generator):
    """A projection as a serving engine runs it: ``x[m, k] @ w[n, k]^T`` (+ bias)."""
    m, n, k = c.shape["m"], c.shape["n"], c.shape["k"]
    x = _rand(gen, (m, k), c.dtype, device)
    w = _rand(gen, (n, k), c.dtype, device)
    if c.params.get("bias"):
        return torch.nn.functional.linear, (x, w, _rand(gen, (n,), c.dtype, device))
    return torch.nn.functional.linear, (x, w)


def _rotary(c: Case, device: str, gen: torch.Generator):
    """Rotary embedding of q and k for ``tokens`` rows (Llama's rotate-half form)."""
    t, h, hkv, d = (c.shape[k] for k in ("tokens", "heads", "kv_heads", "head_dim"))
    q = _rand(gen, (t, h, d), c.dtype, device)
    k = _rand(gen, (t, hkv, d), c.dtype, device)
    cos = _rand(gen, (t, 1, d), c.dtype, device)
    sin = _rand(gen, (t, 1, d), c.dtype, device)

    def half(x):
        return torch.cat((-x[..., d // 2:], x[..., : d // 2]), dim=-1)

    return (lambda q_, k_, c_, s_: (q_ * c_ + half(q_) * s_, k_ * c_ + half(k_) * s_)), (q, k, cos, sin)


def _embedding(c: Case, device: str, gen: torch.Generator):
    t, vocab, h = c.shape["tokens"], c.shape["vocab"], c.shape["hidden"]
    ids = torch.randint(0, vocab, (t,), generator=gen).to(device)
    w = _rand(gen, (vocab, h), c.dtype, device)
    return torch.nn.functional.embedding, (ids, w)


def _collective(c: Case, device: str, gen: torch.Generator):
    raise ValueError("collectives are measured across processes (torch.distributed), not by this harness")


def _gemv(c: Case, device: str, gen: torch.Generator):
    n, k = c.shape["n"], c.shape["k"]
    x = _rand(gen, (1, k), c.dtype, device)
    w = _rand(gen, (n, k), c.dtype, device)
    return torch.nn.functional.linear, (x, w)


_ELEMENTWISE = {
    "add": (torch.add, 2),
    "mul": (torch.mul, 2),
    "gelu": (torch.nn.functional.gelu, 1),
    "silu": (torch.nn.functional.silu, 1),
    "exp": (torch.exp, 1),
}


def _elementwise(c: Case, device: str, gen: torch.Generator):
    if c.op == "silu_mul":
        # a gated activation: x [rows, 2 cols] -> silu(first half) * second half
        rows, cols = c.shape["rows"], c.shape["cols"]
        x = _rand(gen, (rows, 2 * cols), c.dtype, device)
        return (lambda t: torch.nn.functional.silu(t[:, :cols]) * t[:, cols:]), (x,)
    fn, arity = _ELEMENTWISE[c.op]
    n = c.shape["n"]
    return fn, tuple(_rand(gen, (n,), c.dtype, device) for _ in range(arity))


def _reduction(c: Case, device: str, gen: torch.Generator):
    x = _rand(gen, (c.shape["rows"], c.shape["cols"]), c.dtype, device)
    if c.op == "sum":
        return (lambda t: torch.sum(t, dim=-1)), (x,)
    if c.op == "amax":
        return (lambda t: torch.amax(t, dim=-1)), (x,)
    raise ValueError(f"unknown reduction {c.op!r}")


def _norm(c: Case, device: str, gen: torch.Generator):
    rows, cols = c.shape["rows"], c.shape["cols"]
    x = _rand(gen, (rows, cols), c.dtype, device)
    w = _rand(gen, (cols,), c.dtype, device)
    if c.op == "layer_norm":
        b = _rand(gen, (cols,), c.dtype, device)
        return (lambda t, w_, b_: torch.nn.functional.layer_norm(t, (t.shape[-1],), w_, b_)), (x, w, b)
    if c.op == "rms_norm":
        return (lambda t, w_: torch.nn.functional.rms_norm(t, (t.shape[-1],), w_)), (x, w)
    raise ValueError(f"unknown norm {c.op!r}")


def _softmax(c: Case, device: str, gen: torch.Generator):
    x = _rand(gen, (c.shape["rows"], c.shape["cols"]), c.dtype, device)
    return (lambda t: torch.softmax(t, dim=-1)), (x,)


def _attention(c: Case, device: str, gen: torch.Generator):
    b, h, sq, skv, d = (c.shape[k] for k in ("b", "h", "sq", "skv", "d"))
    q = _rand(gen, (b, h, sq, d), c.dtype, device)
    k = _rand(gen, (b, h, skv, d), c.dtype, device)
    v = _rand(gen, (b, h, skv, d), c.dtype, device)
    causal = bool(c.params.get("causal", False))
    return (
        lambda q_, k_, v_: torch.nn.functional.scaled_dot_product_attention(q_, k_, v_, is_causal=causal)
    ), (q, k, v)


def _scatter(c: Case, device: str, gen: torch.Generator):
    updates, targets, width = c.shape["updates"], c.shape["targets"], c.shape["width"]
    distinct = c.shape["distinct"]
    dst = _rand(gen, (targets, width), c.dtype, device)
    src = _rand(gen, (updates, width), c.dtype, device)
    # each of the `distinct` targets receives updates/distinct rows, in shuffled order
    if distinct > targets:
        raise ValueError(f"scatter case: distinct {distinct} > targets {targets}")
    slots = torch.randperm(targets, generator=gen)[:distinct]
    idx = slots[torch.arange(updates) % distinct]
    idx = idx[torch.randperm(updates, generator=gen)].to(device)
    return (lambda d, i, s: d.index_add_(0, i, s)), (dst, idx, src)


_TINY = {
    "add": (torch.add, 2),
    "mul": (torch.mul, 2),
    "relu": (torch.relu, 1),
    "neg": (torch.neg, 1),
}


def _dispatch(c: Case, device: str, gen: torch.Generator):
    fn, arity = _TINY[c.op]
    n = c.shape["n"]
    return fn, tuple(_rand(gen, (n,), c.dtype, device) for _ in range(arity))


def _graph(c: Case, device: str, gen: torch.Generator):
    """A CUDA graph of ``nodes`` tiny kernels; one call replays it (cost per node = time / nodes)."""
    n, nodes = c.shape["n"], c.shape["nodes"]
    x = _rand(gen, (n,), c.dtype, device)
    y = _rand(gen, (n,), c.dtype, device)

    def chain(a, b):
        for _ in range(nodes):
            a = torch.add(a, b)
        return a

    if device.startswith("cuda"):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            chain(x, y)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            chain(x, y)
        return (lambda: g.replay()), ()
    return chain, (x, y)


def _transfer(c: Case, device: str, gen: torch.Generator):
    n = c.shape["n"]
    pinned = bool(c.params.get("pinned", False))
    direction = c.params.get("direction", "h2d")
    host = _rand(gen, (n,), c.dtype, "cpu")
    if pinned and torch.cuda.is_available():
        host = host.pin_memory()
    dev = _rand(gen, (n,), c.dtype, device)
    if direction == "h2d":
        return (lambda d, h: d.copy_(h, non_blocking=pinned)), (dev, host)
    return (lambda h, d: h.copy_(d, non_blocking=pinned)), (host, dev)


def _model(c: Case, device: str, gen: torch.Generator):
    from . import models  # needs transformers: imported only for this family

    return models.build_step(c, device, gen)


_BUILDERS: dict[str, Callable[[Case, str, torch.Generator], tuple[Callable[..., Any], tuple[Any, ...]]]] = {
    "bandwidth": _bandwidth,
    "matmul": _matmul,
    "gemv": _gemv,
    "elementwise": _elementwise,
    "reduction": _reduction,
    "norm": _norm,
    "softmax": _softmax,
    "attention": _attention,
    "scatter": _scatter,
    "dispatch": _dispatch,
    "graph": _graph,
    "transfer": _transfer,
    "model": _model,
    "framework": _model,
    "linear": _linear,
    "rotary": _rotary,
    "gather": _embedding,
    "collective": _collective,
}

# -- compulsory work ----------------------------------------------------------------

#: FLOPs per element for vector ops (counted as a tracer's cost rules would)
_EW_FLOPS = {"add": 1, "mul": 1, "gelu": 8, "silu": 4, "exp": 1, "relu": 1, "neg": 1}


def _work(c: Case) -> dict[str, float]:
    es = ELEMENT_SIZE.get(c.dtype, 4)
    s = c.shape
    flops = 0.0
    updates = distinct = 0
    launches = 1
    if c.family == "bandwidth":
        n = s["n"]
        nbytes = n * es * (1 if c.op == "read" else 2)
        flops = n if c.op == "read" else 0
        working = nbytes
    elif c.family == "matmul":
        m, n, k = s["m"], s["n"], s["k"]
        flops = 2.0 * m * n * k
        nbytes = (m * k + k * n + m * n) * es
        working = nbytes
    elif c.family == "gemv":
        n, k = s["n"], s["k"]
        flops = 2.0 * n * k
        nbytes = (n * k + k + n) * es
        working = nbytes
    elif c.family == "linear":
        m, n, k = s["m"], s["n"], s["k"]
        flops = 2.0 * m * n * k
        nbytes = (m * k + k * n + m * n + (n if c.params.get("bias") else 0)) * es
        working = nbytes
    elif c.family == "rotary":
        t, h, hkv, d = (s[k] for k in ("tokens", "heads", "kv_heads", "head_dim"))
        elems = t * (h + hkv) * d
        flops = 3.0 * elems
        nbytes = (2 * elems + 2 * t * d) * es
        working = nbytes
    elif c.family == "gather":
        t, h = s["tokens"], s["hidden"]
        nbytes = 2 * t * h * es + 8 * t
        working = nbytes
    elif c.family == "collective":
        nbytes = float(s["bytes"])
        working = nbytes
    elif c.family == "elementwise" and c.op == "silu_mul":
        rows, cols = s["rows"], s["cols"]
        flops = 5.0 * rows * cols
        nbytes = 3 * rows * cols * es
        working = nbytes
    elif c.family in ("elementwise", "dispatch"):
        n = s["n"]
        arity = (_ELEMENTWISE if c.family == "elementwise" else _TINY)[c.op][1]
        flops = float(_EW_FLOPS[c.op] * n)
        nbytes = (arity + 1) * n * es
        working = nbytes
    elif c.family in ("reduction", "softmax", "norm"):
        rows, cols = s["rows"], s["cols"]
        out_elems = rows if c.family == "reduction" else rows * cols
        per = {"reduction": 1, "softmax": 5, "norm": 8}[c.family]
        flops = float(per * rows * cols)
        nbytes = (rows * cols + out_elems) * es + (2 * cols * es if c.family == "norm" else 0)
        working = nbytes
    elif c.family == "attention":
        b, h, sq, skv, d = (s[k] for k in ("b", "h", "sq", "skv", "d"))
        pairs = sq * skv
        if c.params.get("causal") and sq == skv:
            pairs = sq * (sq + 1) / 2
        flops = 4.0 * b * h * pairs * d
        nbytes = b * h * (2 * sq * d + 2 * skv * d) * es
        working = nbytes
    elif c.family == "scatter":
        updates, distinct = s["updates"], s["distinct"]
        w = s["width"]
        flops = float(updates * w)
        # source rows + indices read, touched target rows read and written
        nbytes = updates * w * es + updates * 8 + 2 * min(distinct, s["targets"]) * w * es
        working = nbytes + s["targets"] * w * es
        updates = updates * w
        distinct = distinct * w
    elif c.family == "graph":
        n, nodes = s["n"], s["nodes"]
        flops = float(n * nodes)
        nbytes = 3 * n * es * nodes
        working = 3 * n * es
        launches = nodes
    elif c.family == "transfer":
        nbytes = s["n"] * es
        working = nbytes
    elif c.family in ("model", "framework"):
        nbytes = 0
        working = 0
        launches = 0
    else:
        raise ValueError(f"unknown family {c.family!r}")
    return {
        "flops": float(flops),
        "bytes": float(nbytes),
        "working_set": float(working),
        "updates": float(updates),
        "distinct_targets": float(distinct),
        "launches": float(launches),
    }
