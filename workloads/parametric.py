"""Parametric LLM graphs: one step's graph as a function of batch ``B`` and length ``X``.

For an LLM phase the kernels launched do not depend on the batch or the length (the
context of a decode step, the prompt of a prefill), only their numbers do: every FLOP
count, byte count, GEMM dimension and shape of the step is a polynomial in ``B`` and
``X``, linear in ``B`` and at most quadratic in ``X`` (prefill attention is ``B X^2``).
So a ``Family`` is traced once per model, phase, dtype, fusion policy, step options
and tensor-parallel degree, and the graph of any other ``(B, X)`` is derived:

1. the step is traced (fused, sharded) at the six points ``BATCHES x LENGTHS``;
2. each trace is cut into a *skeleton* (everything that is not a number: op names,
   kinds, tensors, roles, modules, attribute keys; ``matmul``/``gemv`` count as one
   kind, read back from ``m`` and ``n`` as the tracer decides it) and its *leaves*
   (every number, in a fixed order);
3. the skeletons must be equal, and each leaf is interpolated exactly (integer
   arithmetic) in the basis ``1, X, X^2, B, BX, BX^2``; a leaf that is not an integer
   polynomial in that basis (a mixture-of-experts expectation) makes the step
   non-parametric;
4. the step is traced once more at ``CHECK`` and compared with the derived graph leaf
   by leaf; any difference makes it non-parametric.

A non-parametric step is traced point by point (``workloads.build`` caches each graph).
Derived graphs equal full traces (a test compares them on a grid, op by op); FLOP
counts above 2^53 may differ from a trace in the last bit, as the tracer rounds its
float products and the derivation rounds the exact integer once.

Domain: ``B >= 1``; ``X >= MIN_LENGTH[phase]`` (a decode step over an empty cache reads
no cache, a one-token prefill takes no causal mask: both are traced as they are).

A sweep reads many points of a family without building their graphs: the family's
arrays (``Family.arrays``, ``FamilyPoint``) are in ``workloads.familyarrays``.

Why one module of about 400 lines: the skeleton and leaf encoding, the exact fit and the
on-disk format all read one leaf order; kept in one file, a change to that order is one
diff (``workloads.familyarrays`` reads it only through ``_count``, ``_value_make`` and
``make_op``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import chain, product
from typing import TYPE_CHECKING, Any

import numpy as np

from .graph import WorkloadGraph
from .op import GEMM_KINDS, Access, Op

if TYPE_CHECKING:
    from .familyarrays import FamilyArrays

#: fit points: batch x length (context for decode, prompt for prefill)
BATCHES = (1, 2)
LENGTHS = (11, 27, 59)
#: traced again and compared with the derived graph before a family is trusted
CHECK = (3, 101)
#: the shortest length a family derives (see the module docstring)
MIN_LENGTH = {"decode": 1, "prefill": 2}
#: meta keys a derived graph takes from the request, not from the fit
STEP_KEYS = ("batch", "context", "prompt")
#: on-disk layout of a family (bump when it changes)
FORMAT = 1


class NotParametric(Exception):
    """The traced samples are not one skeleton with polynomial leaves; says why."""


def points() -> list[tuple[int, int]]:
    return [(b, x) for b, x in product(BATCHES, LENGTHS)]


def basis(b: int, x: int) -> list[int]:
    return [1, x, x * x, b, b * x, b * x * x]


# -- skeleton and leaves --------------------------------------------------------------------


def _kind_token(op: Op) -> str:
    a = op.attrs
    if op.kind in GEMM_KINDS and "m" in a and "n" in a and op.kind == _matmul_kind(a["m"], a["n"]):
        return "@matmul"  # matmul or gemv, read back from m and n
    return op.kind


def _matmul_kind(m: Any, n: Any) -> str:
    return "gemv" if m == 1 or n == 1 else "matmul"  # rules.matmul_kind


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value_skel(v: Any, leaves: list) -> Any:
    """A value's skeleton; its numbers are appended to ``leaves``."""
    if _is_num(v):
        leaves.append(v)
        return "f" if isinstance(v, float) else "i"
    if isinstance(v, dict):
        return ("d", tuple((k, _value_skel(x, leaves)) for k, x in v.items()))
    if isinstance(v, list):
        return ("l", tuple(_value_skel(x, leaves) for x in v))
    if isinstance(v, tuple):
        return ("t", tuple(_value_skel(x, leaves) for x in v))
    return ("v", v)


def _value_make(s: Any, it) -> Any:
    if s == "i":
        return int(next(it))
    if s == "f":
        return float(next(it))
    tag, body = s
    if tag == "v":
        return body
    if tag == "d":
        return {k: _value_make(x, it) for k, x in body}
    if tag == "l":
        return [_value_make(x, it) for x in body]
    return tuple(_value_make(x, it) for x in body)


def op_skeleton(op: Op, leaves: list) -> tuple:
    """The op without its numbers (hashable), appending the numbers to ``leaves`` in the
    order ``make_op`` reads them back."""
    leaves.append(op.launches)
    leaves.append(op.updates)
    leaves.append(op.distinct_targets)
    leaves.extend(op.flops.values())
    leaves.extend(a.bytes for a in op.reads)
    leaves.extend(a.bytes for a in op.writes)
    for s in op.shapes:
        leaves.extend(s)
    return (op.id, op.name, _kind_token(op), op.dtype, op.module, op.unknown, op.device, op.stream,
            tuple(op.flops), tuple((a.tensor, a.role) for a in op.reads),
            tuple((a.tensor, a.role) for a in op.writes), tuple(len(s) for s in op.shapes),
            _value_skel(op.attrs, leaves), tuple(type(v) is float for v in op.flops.values()))


def make_op(sk: tuple, it) -> Op:
    """The op of skeleton ``sk`` with numbers taken from iterator ``it``."""
    (oid, name, kind, dtype, module, unknown, device, stream, fkeys, reads, writes, ranks, attrs_sk, ffloat) = sk
    launches, updates, distinct = int(next(it)), int(next(it)), int(next(it))
    flops = {k: (float(next(it)) if f else next(it)) for k, f in zip(fkeys, ffloat, strict=True)}
    rd = [Access(t, int(next(it)), r) for t, r in reads]
    wr = [Access(t, int(next(it)), r) for t, r in writes]
    shapes = [[int(next(it)) for _ in range(n)] for n in ranks]
    attrs = _value_make(attrs_sk, it)
    if kind == "@matmul":
        kind = _matmul_kind(attrs["m"], attrs["n"])
    return Op(id=oid, name=name, kind=kind, dtype=dtype, flops=flops, reads=rd, writes=wr, launches=launches,
              shapes=shapes, module=module, updates=updates, distinct_targets=distinct, unknown=unknown,
              attrs=attrs, device=device, stream=stream)


def graph_skeleton(g: WorkloadGraph) -> tuple[tuple, list]:
    """(skeleton, leaves) of a whole graph: its meta (less ``STEP_KEYS``), then each op."""
    leaves: list = []
    meta = {k: v for k, v in g.meta.items() if k not in STEP_KEYS}
    sk = (_value_skel(meta, leaves), tuple(op_skeleton(op, leaves) for op in g.ops))
    return sk, leaves


# -- the family --------------------------------------------------------------------------------


class Family:
    """One LLM step as a function of (batch, length): a skeleton and integer polynomial
    coefficients for its leaves (see the module docstring)."""

    __slots__ = ("phase", "skeleton", "coef", "max_positions", "extra", "_int64", "_arrays")

    def __init__(self, phase: str, skeleton: tuple, coef: np.ndarray, max_positions: int | None,
                 extra: dict | None = None) -> None:
        self.phase = phase
        self.skeleton = skeleton
        #: [leaves x 6] integer coefficients (object dtype: exact)
        self.coef = coef
        self.max_positions = max_positions
        self.extra = dict(extra or {})
        try:
            c64 = coef.astype(np.int64)
        except OverflowError:
            c64 = None
        self._int64 = c64 if c64 is not None and (c64.astype(object) == coef).all() else None
        self._arrays = None

    @property
    def arrays(self) -> FamilyArrays:
        """The family's ``FamilyArrays`` (built on first use)."""
        if self._arrays is None:
            from .familyarrays import FamilyArrays

            self._arrays = FamilyArrays(self)
        return self._arrays

    @property
    def length_key(self) -> str:
        return "context" if self.phase == "decode" else "prompt"

    def covers(self, batch: int, length: int) -> bool:
        return isinstance(batch, int) and isinstance(length, int) and batch >= 1 and length >= MIN_LENGTH[self.phase]

    def leaves(self, batch: int, length: int) -> np.ndarray:
        """Every leaf at (batch, length), exact: int64 where it fits, Python ints otherwise."""
        b = basis(batch, length)
        if self._int64 is not None:
            bound = np.abs(self._int64).astype(float) @ np.abs(np.array(b, dtype=float))
            if float(bound.max(initial=0.0)) < 2.0**62:
                return self._int64 @ np.array(b, dtype=np.int64)
        return self.coef @ np.array(b, dtype=object)

    def graph(self, batch: int, length: int, step: dict[str, Any]) -> WorkloadGraph:
        """The derived graph; ``step`` gives the meta ``batch``/``context``/``prompt``."""
        vals = self.leaves(batch, length).tolist()
        it = iter(vals)
        meta_sk, ops_sk = self.skeleton
        meta = _value_make(meta_sk, it)
        for k in STEP_KEYS:
            if k in step:
                meta[k] = step[k]
        ordered = {}
        for k in self.extra.get("meta_order", list(meta)):
            if k in meta:
                ordered[k] = meta[k]
        ordered.update(meta)
        g = WorkloadGraph(meta=ordered)
        for sk in ops_sk:
            g.add(make_op(sk, it))
        return g

    # -- persistence ---------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        meta_sk, ops_sk = self.skeleton
        skel = {"meta": _enc(meta_sk), "ops": [_enc_op(sk) for sk in ops_sk]}
        return {"format": FORMAT, "phase": self.phase, "skeleton": skel,
                "coef": [[int(c) for c in row] for row in self.coef], "max_positions": self.max_positions,
                "extra": self.extra}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Family:
        """A family read back from ``to_doc`` (raises on anything malformed)."""
        if doc.get("format") != FORMAT or doc.get("phase") not in MIN_LENGTH:
            raise ValueError("not a family of this format")
        skel = doc["skeleton"]
        sk = (_dec(skel["meta"]), tuple(_dec_op(o) for o in skel["ops"]))
        coef = _coef(doc["coef"])
        mp = doc.get("max_positions")
        if mp is not None and not isinstance(mp, int):
            raise ValueError("bad max_positions")
        fam = cls(doc["phase"], sk, coef, mp, doc.get("extra") or {})
        fam.check_shape()
        return fam

    def check_shape(self) -> None:
        """Raise unless the skeleton reads exactly as many leaves as there are coefficients
        (a truncated or foreign entry is caught here, before it derives anything)."""
        leaves: list = []
        meta_sk, ops_sk = self.skeleton
        _count(meta_sk, leaves)
        n = len(leaves)
        for sk in ops_sk:
            if not (isinstance(sk, tuple) and len(sk) == 14):
                raise ValueError("bad op skeleton")
            n += 3 + len(sk[8]) + len(sk[9]) + len(sk[10]) + sum(sk[11])
            sub: list = []
            _count(sk[12], sub)
            n += len(sub)
        if n != len(self.coef):
            raise ValueError(f"skeleton reads {n} leaves, {len(self.coef)} stored")


def _count(s: Any, out: list) -> None:
    if s in ("i", "f"):
        out.append(1)
        return
    tag, body = s
    if tag == "v":
        return
    if tag == "d":
        for _k, x in body:
            _count(x, out)
    elif tag in ("l", "t"):
        for x in body:
            _count(x, out)
    else:
        raise ValueError(f"bad skeleton tag {tag!r}")


def _enc(s: Any) -> Any:
    """A value skeleton as JSON: "i" / "f" leaves, ["v", x], ["d", [[k, s], ...]], ["l"|"t", [s, ...]]."""
    if s in ("i", "f"):
        return s
    tag, body = s
    if tag == "v":
        return ["v", body]
    if tag == "d":
        return ["d", [[k, _enc(x)] for k, x in body]]
    return [tag, [_enc(x) for x in body]]


def _dec(s: Any) -> Any:
    if s == "i" or s == "f":
        return s
    tag, body = s
    if tag == "v":
        if isinstance(body, (list, dict)):
            raise ValueError("bad skeleton value")
        return ("v", body)
    if tag == "d":
        return ("d", tuple((str(k), _dec(x)) for k, x in body))
    if tag in ("l", "t"):
        return (tag, tuple(_dec(x) for x in body))
    raise ValueError(f"bad skeleton tag {tag!r}")


def _enc_op(sk: tuple) -> list:
    (oid, name, kind, dtype, module, unknown, device, stream, fkeys, reads, writes, ranks, attrs_sk, ffloat) = sk
    return [oid, name, kind, dtype, module, unknown, device, stream, list(fkeys), [list(a) for a in reads],
            [list(a) for a in writes], list(ranks), _enc(attrs_sk), list(ffloat)]


def _dec_op(o: list) -> tuple:
    (oid, name, kind, dtype, module, unknown, device, stream, fkeys, reads, writes, ranks, attrs, ffloat) = o
    if not (isinstance(oid, int) and isinstance(name, str) and isinstance(kind, str) and isinstance(module, str)):
        raise ValueError("bad op skeleton")
    return (oid, name, kind, dtype, module, bool(unknown), int(device), int(stream), tuple(str(k) for k in fkeys),
            tuple((str(t), str(r)) for t, r in reads), tuple((str(t), str(r)) for t, r in writes),
            tuple(int(n) for n in ranks), _dec(attrs), tuple(bool(f) for f in ffloat))


def _coef(rows: list) -> np.ndarray:
    if set(map(type, rows)) - {list} or set(map(len, rows)) - {6} or set(map(type, chain.from_iterable(rows))) - {int}:
        raise ValueError("coefficients must be rows of 6 whole numbers")
    try:
        return np.array(rows, dtype=np.int64).reshape(-1, 6).astype(object)
    except OverflowError:
        return np.array(rows, dtype=object).reshape(-1, 6)


# -- fitting ---------------------------------------------------------------------------------


def _inverse() -> tuple[list[list[int]], int]:
    """The fit matrix's inverse as integers over one denominator."""
    m = [[Fraction(v) for v in basis(b, x)] for b, x in points()]
    n = len(m)
    a = [row + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(m)]
    for c in range(n):
        p = next(r for r in range(c, n) if a[r][c] != 0)
        a[c], a[p] = a[p], a[c]
        piv = a[c][c]
        a[c] = [v / piv for v in a[c]]
        for r in range(n):
            if r != c and a[r][c] != 0:
                f = a[r][c]
                a[r] = [v - f * w for v, w in zip(a[r], a[c], strict=True)]
    inv = [row[n:] for row in a]
    den = math.lcm(*(v.denominator for row in inv for v in row))
    return [[int(v * den) for v in row] for row in inv], den


def _exact(rows: list[list]) -> np.ndarray:
    """Leaves of the samples as whole numbers: int64 where they fit, exact Python ints else."""
    for row in rows:
        for v in row:
            if isinstance(v, float) and not v.is_integer():
                raise NotParametric(f"a leaf is not a whole number ({v!r})")
    try:
        a = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):
        a = None
    if a is not None and (a.size == 0 or float(np.abs(a).max()) < 2.0**53):
        return a.astype(np.int64)
    return np.array([[int(v) for v in row] for row in rows], dtype=object)


def fit(phase: str, samples: list[WorkloadGraph], check: WorkloadGraph, max_positions: int | None) -> Family:
    """The family through ``samples`` (traced at ``points()``, in order), checked against
    ``check`` (traced at ``CHECK``). Raises ``NotParametric`` saying why not."""
    pts = points()
    if len(samples) != len(pts):
        raise ValueError(f"need {len(pts)} samples, got {len(samples)}")
    cuts = [graph_skeleton(g) for g in samples]
    sk0 = cuts[0][0]
    for (b, x), (sk, _) in zip(pts, cuts, strict=True):
        if sk != sk0:
            raise NotParametric(f"the kernels of batch {b}, length {x} differ from batch {pts[0][0]}, "
                                f"length {pts[0][1]}")
    vals = _exact([leaves for _, leaves in cuts])  # [samples x leaves], whole numbers
    const = (vals == vals[0]).all(axis=0)
    vary = np.flatnonzero(~const)
    coef = np.zeros((vals.shape[1], 6), dtype=object)
    coef[:, 0] = vals[0]
    if len(vary):
        inv, den = _inverse()
        num = np.array(inv, dtype=object) @ vals[:, vary].astype(object)  # [6 x varying] times den
        if any(int(c) % den for c in num.ravel()):
            raise NotParametric("a leaf is not an integer polynomial in batch and length")
        coef[vary] = (num // den).T
    fam = Family(phase, sk0, coef, max_positions, {"meta_order": list(samples[0].meta)})
    got = fam.graph(*CHECK, {k: check.meta.get(k) for k in STEP_KEYS})
    sk_c, leaves_c = graph_skeleton(check)
    sk_g, leaves_g = graph_skeleton(got)
    if sk_c != sk_g:
        raise NotParametric(f"the kernels at batch {CHECK[0]}, length {CHECK[1]} differ from the fitted ones")
    for a, b in zip(leaves_c, leaves_g, strict=True):
        if a != b:
            raise NotParametric(f"at batch {CHECK[0]}, length {CHECK[1]} a number is {a!r}, derived {b!r}")
    return fam
