"""The op-kind registry: one record per kind an ``Op`` may have, and everything the other
layers ask of a kind, so that a new kind is one ``register_kind`` call.

The kind sets that graph passes, the engine and the cost model test membership in
(``workloads.op.MATRIX_KINDS`` and the others) are live views of this registry, so a kind
registered after they were imported is in them at once. The cost model's own hooks for a
kind are named here as ``"module:function"`` (or given as a callable by an extension
module): ``workloads`` never imports ``simulator``, the cost model resolves the name.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView
from dataclasses import dataclass
from typing import Any

from .payloads import Attention, Collective, Gemm, Moe, Scatter, Transfer

#: the flags an ``OpKind`` has a kind set for
FLAGS = ("matrix", "weight", "quantized", "gemm", "library", "fusible")

Hook = Callable[..., Any] | str | None


class KindError(ValueError):
    user_facing = True


@dataclass(frozen=True)
class OpKind:
    name: str
    #: runs on the matrix engines (tensor cores, AMX): the cost model's compute unit and overlap
    matrix: bool = False
    #: multiplies by a weight: the tracer stores its weights at a policy's bytes per element and
    #: labels its FLOPs with the policy's matmul dtype
    weight: bool = False
    #: a quantised kernel family reads its weights
    quantized: bool = False
    #: a dense matrix product (GEMM or its one-row GEMV): tensor parallelism splits its weight by
    #: module name, fusion merges sibling projections, PIM banks run it, parametric families
    #: choose between the two
    gemm: bool = False
    #: its kernel comes from a vendor library (cuBLAS/cuDNN/oneDNN GEMMs, SDPA backends): the
    #: host pays the library's call path (``host.library_call``) on top of framework dispatch
    library: bool = False
    #: a pointwise fuser may absorb it into the kernel of its producer
    fusible: bool = False
    #: the cost formula (``workloads.formulas``) a ``Rule`` of this kind uses unless it names one
    formula: str = ""
    #: the binding term reports count its time as whatever bounds it (a collective's time is
    #: communication even when latency binds it); None: its bound's term
    category: str | None = None
    #: the cost model's terms for this kind instead of the device's default (routing its bytes,
    #: then compute): ``(op, structure, placement, resident, terms, far) -> compute roofline s``
    terms: Hook = None
    #: its efficiency keys, most specific first, where the op name's refinement is not enough
    keys: Hook = None
    #: its terms read nothing but what the cost model's shape signature holds (the op's shape
    #: and its payloads), so ops of equal shape share one price (a kind whose terms read attrs
    #: outside its payload must say False)
    by_shape: bool = True
    #: the typed record of its facts (``workloads.payloads``) that ``payload(op)`` reads from
    #: ``Op.attrs``; the cost model's shape signature holds its fields
    payload: type | None = None


#: kind name -> record, in registration order
REGISTRY: dict[str, OpKind] = {}
_SETS: dict[str, dict[str, None]] = {flag: {} for flag in FLAGS}


def kind_set(flag: str) -> KeysView[str]:
    """The names of the kinds with ``flag`` set: a live, ordered, read-only view."""
    return _SETS[flag].keys()


def register_kind(kind: OpKind) -> None:
    if not kind.name or kind.name in REGISTRY:
        raise KindError(f"op kind {kind.name!r} is empty or already registered")
    REGISTRY[kind.name] = kind
    for flag in FLAGS:
        if getattr(kind, flag):
            _SETS[flag][kind.name] = None


def unregister_kind(name: str) -> None:
    REGISTRY.pop(name, None)
    for members in _SETS.values():
        members.pop(name, None)


def get(name: str) -> OpKind | None:
    return REGISTRY.get(name)


def check(name: str) -> None:
    if name not in REGISTRY:
        raise ValueError(f"kind {name!r} not in {tuple(REGISTRY)}")


_MATRIX = {"matrix": True, "library": True}
_WEIGHT = {**_MATRIX, "weight": True}
_TERMS = "simulator.kindterms:"

for _kind in (
    OpKind("matmul", **_WEIGHT, quantized=True, gemm=True, formula="matmul", payload=Gemm),
    OpKind("gemv", **_WEIGHT, quantized=True, gemm=True, formula="matmul", payload=Gemm),
    # flash attention is matrix work without a weight; its phase picks its efficiency key
    OpKind("attention", **_MATRIX, keys=_TERMS + "attention_keys", payload=Attention),
    OpKind("conv", **_WEIGHT, formula="conv"),
    OpKind("elementwise", fusible=True, formula="pointwise"),
    OpKind("reduction", fusible=True, formula="reduce"),
    OpKind("norm", fusible=True, formula="norm"),
    OpKind("softmax", fusible=True, formula="softmax"),
    OpKind("scatter", formula="scatter", terms=_TERMS + "scatter_terms", payload=Scatter),
    OpKind("gather", formula="gather"),
    OpKind("copy", fusible=True, formula="copy"),
    OpKind("transfer", terms=_TERMS + "transfer_terms", by_shape=False, payload=Transfer),
    OpKind("collective", category="collective", terms=_TERMS + "collective_terms", by_shape=False,
           payload=Collective),
    # a mixture-of-experts block (``workloads.leaves``): its expert GEMMs read weights
    OpKind("moe", **_WEIGHT, quantized=True, payload=Moe),
    OpKind("view", fusible=True, formula="view"),
    OpKind("unknown"),
):
    register_kind(_kind)
