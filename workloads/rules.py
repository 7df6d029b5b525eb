"""Cost rules, one place, as data: aten overload packet name -> how to cost it.

Each rule names a *cost* (how FLOPs and bytes derive from shapes) and a per-element
FLOP count where that applies. Counts for transcendental functions are small,
documented conventions (one FLOP per add/mul, a few for exp-based functions), not
measurements. Bytes are always compulsory traffic: each input tensor read once, each
output written once, with the exceptions named by the cost (gathers read only the rows
they fetch; overwriting copies do not read their destination; scatters touch only their
distinct targets).

An op whose packet has no rule (and no ``pointwise`` tag) is recorded ``unknown``.
``register_rule`` adds one (a custom op's kernel, a new activation).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

from . import kinds

if TYPE_CHECKING:
    from .payloads import Attention


@dataclass(frozen=True)
class Rule:
    #: the op kind it records (``workloads.kinds``)
    kind: str
    #: its cost formula (``workloads.formulas``): matmul | conv | pointwise | reduce | norm |
    #: softmax | gather | scatter | index_put | scatter_copy | copy | fill | view; empty:
    #: its kind's (``OpKind.formula``)
    cost: str = ""
    #: FLOPs per output element (pointwise/fill) or per input element (reduce/norm/softmax)
    per_elem: float = 0.0
    #: the op fully overwrites its mutated destination, so the old contents are not read
    overwrites: bool = False

    def __post_init__(self) -> None:
        kinds.check(self.kind)
        if not self.cost:
            object.__setattr__(self, "cost", kinds.REGISTRY[self.kind].formula)


def _ew(n: float = 1.0) -> Rule:
    return Rule("elementwise", "pointwise", n)


# FLOP counts per element, documented here once:
#   add/sub/mul/div/neg/abs/clamp/where/masked_fill/compare: 1
#   exp/log/rsqrt/sqrt/reciprocal/pow/sin/cos: 1 (one SFU or libm call; the rooflines of
#     interest are memory-bound for these)
#   sigmoid (exp, add, div): 3; silu = x*sigmoid(x): 4; tanh: 4; gelu (tanh form): 8
#   layer_norm (mean, sub, square, mean, add eps, rsqrt, mul, mul+add affine): 8
#   rms_norm (square, mean, add eps, rsqrt, mul, mul weight): 5
#   softmax (max, sub, exp, sum, div): 5
#   gather (index arithmetic per element fetched): 1
RULES: dict[str, Rule] = {
    # matrix products: FLOPs = 2*batch*m*n*k
    **{n: Rule("matmul", "matmul") for n in ("mm", "bmm", "addmm", "baddbmm", "linear", "matmul", "_int_mm")},
    "convolution": Rule("conv", "conv"),
    "_convolution": Rule("conv", "conv"),
    # elementwise and activations
    **{n: _ew(1) for n in (
        "add", "sub", "rsub", "mul", "div", "neg", "abs", "clamp", "clamp_min", "clamp_max", "where",
        "masked_fill", "relu", "exp", "log", "rsqrt", "sqrt", "reciprocal", "pow", "sin", "cos",
        "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and",
        "bitwise_or", "bitwise_not", "maximum", "minimum", "sign", "floor", "ceil", "round", "square",
        "remainder", "fmod", "lerp", "addcmul", "addcdiv", "hardtanh", "leaky_relu", "threshold",
        "floor_divide", "erf", "exp2", "log2", "log1p", "expm1", "trunc", "isnan", "isinf",
    )},
    "sigmoid": _ew(3),
    "silu": _ew(4),
    "tanh": _ew(4),
    "gelu": _ew(8),
    "mish": _ew(8),
    "arange": _ew(1),
    "tril": _ew(1),
    "triu": _ew(1),
    # reductions: FLOPs per *input* element
    **{n: Rule("reduction", "reduce", 1) for n in (
        "sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "any", "all", "cumsum",
        "topk",
    )},
    # pooling: one compare/add per input element of the window sweep
    **{n: Rule("reduction", "reduce", 1) for n in (
        "max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d",
        "max_pool1d", "avg_pool1d", "adaptive_max_pool2d",
    )},
    "var": Rule("reduction", "reduce", 3),
    "std": Rule("reduction", "reduce", 3),
    "var_mean": Rule("reduction", "reduce", 3),
    "linalg_vector_norm": Rule("reduction", "reduce", 2),
    "logsumexp": Rule("reduction", "reduce", 4),
    # norms and softmax: FLOPs per input element
    "native_layer_norm": Rule("norm", "norm", 8),
    "layer_norm": Rule("norm", "norm", 8),
    "_fused_rms_norm": Rule("norm", "norm", 5),
    "rms_norm": Rule("norm", "norm", 5),
    "native_group_norm": Rule("norm", "norm", 8),
    "native_batch_norm": Rule("norm", "norm", 4),
    "_native_batch_norm_legit_no_training": Rule("norm", "norm", 4),
    "_native_batch_norm_legit": Rule("norm", "norm", 4),
    "_softmax": Rule("softmax", "softmax", 5),
    "_log_softmax": Rule("softmax", "softmax", 6),
    "_safe_softmax": Rule("softmax", "softmax", 5),
    # gathers: read only the rows they fetch
    **{n: Rule("gather", "gather", 1) for n in ("embedding", "index_select", "gather", "index", "take")},
    # scatters that accumulate (atomics)
    **{n: Rule("scatter", "scatter") for n in ("index_add", "scatter_add", "scatter_reduce", "index_reduce")},
    "index_put": Rule("scatter", "index_put"),
    # copies
    **{n: Rule("copy", "copy") for n in (
        "_to_copy", "clone", "contiguous", "cat", "stack", "repeat", "expand_copy", "_unsafe_index",
        "constant_pad_nd", "flip", "roll", "one_hot", "_pin_memory",
    )},
    "copy": Rule("copy", "copy", overwrites=True),
    "index_copy": Rule("copy", "scatter_copy", overwrites=True),
    "scatter": Rule("copy", "scatter_copy", overwrites=True),
    "slice_scatter": Rule("copy", "copy"),
    "select_scatter": Rule("copy", "copy"),
    # fills write their output and read nothing
    **{n: Rule("elementwise", "fill", 0, overwrites=True) for n in (
        "zeros", "ones", "full", "fill", "zero", "zeros_like", "ones_like", "full_like", "scalar_tensor",
        "new_zeros", "new_ones", "new_full", "uniform", "normal", "bernoulli", "randn", "rand",
    )},
    # allocations and metadata-only ops launch nothing and move nothing
    **{n: Rule("view", "view") for n in (
        "empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided", "_unsafe_view",
        "lift_fresh", "lift_fresh_copy", "detach", "alias", "_reshape_alias", "set_", "resize_",
        "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "is_same_size", "_assert_async",
        "_assert_tensor_metadata", "_has_compatible_shallow_copy_type", "is_nonzero",
    )},
}


def register_rule(packet: str, rule: Rule) -> None:
    """Cost ``packet`` (an aten or custom op's overload packet name) by ``rule``."""
    RULES[packet] = rule


def lookup(packet: str, tags: tuple = ()) -> Rule | None:
    """The rule for an aten overload packet; in-place ``foo_`` falls back to ``foo``."""
    r = RULES.get(packet)
    if r is None and packet.endswith("_") and not packet.endswith("__"):
        r = RULES.get(packet[:-1])
    if r is None and any(str(t).endswith("pointwise") for t in tags):
        r = Rule("elementwise", "pointwise", 1)  # any op torch tags pointwise: 1 FLOP/element
    return r


# --- shape formulas --------------------------------------------------------------------

def matmul_dims(packet: str, shapes: list[list[int]]) -> dict[str, int]:
    """m, n, k, batch of a matrix product from its tensor argument shapes (in order)."""
    base = packet.rstrip("_")
    if base in ("addmm", "baddbmm"):
        shapes = shapes[1:]
    if base == "linear":
        a, w = shapes[0], shapes[1]
        m = prod(a[:-1]) if len(a) > 1 else 1
        return {"m": m, "n": w[0], "k": a[-1], "batch": 1}
    a, b = shapes[0], shapes[1]
    if len(a) == 1:
        a = [1, a[0]]
    if len(b) == 1:
        b = [b[0], 1]
    batch = prod(a[:-2]) if len(a) > 2 else (prod(b[:-2]) if len(b) > 2 else 1)
    return {"m": a[-2], "n": b[-1], "k": a[-1], "batch": batch}


def matmul_flops(d: dict[str, int]) -> float:
    return 2.0 * d["batch"] * d["m"] * d["n"] * d["k"]


def matmul_kind(d: dict[str, int]) -> str:
    """A product with one row per batch is a matrix-vector product (memory-bound)."""
    return "gemv" if d["m"] == 1 or d["n"] == 1 else "matmul"


def attention_attrs(q: list[int], k: list[int], v: list[int]) -> dict[str, int]:
    """Attrs of SDPA with q [.., h, sq, d], k [.., hkv, skv, d], v [.., hkv, skv, dv]."""
    b = prod(q[:-3]) if len(q) > 3 else 1
    return {"b": b, "h": q[-3], "sq": q[-2], "skv": k[-2], "d": q[-1], "dv": v[-1], "kv_heads": k[-3]}


def attention_flops(a: Attention) -> float:
    """QK^T and PV: 2*b*h*sq*skv*d each (4*b*h*sq*skv*d with d == dv). Causal masking is
    not subtracted: the dense count is what an unmasked kernel does; ``a.causal`` lets a
    cost model halve it for kernels that skip masked tiles."""
    return 2.0 * a.b * a.h * a.sq * a.skv * (a.d + a.dv)  # type: ignore[operator]


def conv_flops(inp: list[int], weight: list[int], out: list[int], groups: int) -> float:
    """2 * N * Cout * prod(out spatial) * Cin/groups * prod(kernel)."""
    cin_per_group = weight[1]  # weight is [Cout, Cin/groups, *kernel]
    return 2.0 * prod(out) * cin_per_group * prod(weight[2:])


def expected_unique_experts(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit when ``tokens`` each pick ``top_k`` of ``num_experts``
    uniformly: E * (1 - (1 - k/E)^T)."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)
