"""A parametric family (``workloads.parametric``) as index arrays, for sweeps: one
``FamilyArrays`` per family says where each op's numbers sit in the leaf vector, and a
``FamilyPoint`` is one (batch, length) of it with the per-op numbers ``simulate`` reads,
its ops built only when asked for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .op import LIBRARY_KINDS, Op
from .parametric import STEP_KEYS, Family, _count, _matmul_kind, _value_make, make_op


def _leaf_count(s: Any) -> int:
    out: list = []
    _count(s, out)
    return len(out)


def _attr_leaf(attrs_sk: Any, key: str) -> int | None:
    """Position among an op's attribute leaves of numeric attribute ``key`` (None if absent)."""
    if not (isinstance(attrs_sk, tuple) and attrs_sk[0] == "d"):
        return None
    pos = 0
    for k, v in attrs_sk[1]:
        if k == key:
            return pos if v in ("i", "f") else None
        pos += _leaf_count(v)
    return None


class FamilyArrays:
    """A family's structure as index arrays, computed once: where each op's numbers sit
    in the leaf vector, its accesses, the tensors it reads and who wrote them (for cache
    residency), live ranges of activations (for the footprint), and *classes*: ops whose
    skeleton (less id, module and tensor names) and polynomials are equal, so that they
    have equal numbers at every (batch, length). What a sweep needs of one step without
    building its ops (``FamilyPoint``)."""

    def __init__(self, fam: Family) -> None:
        meta_sk, ops_sk = fam.skeleton
        self.family = fam
        self.n = n = len(ops_sk)
        off = _leaf_count(meta_sk)
        self.meta_leaves = off
        offs = np.empty(n + 1, dtype=np.int64)
        kinds, unknown, lanes_of, views = [], np.zeros(n, dtype=bool), [], np.zeros(n, dtype=bool)
        mm = []  # (op, m leaf, n leaf) of ops whose kind is read back from m and n
        acc_leaf, acc_role, acc_op, acc_read, acc_tensor = [], [], [], [], []
        flop_leaf, flop_op, flop_pair_key = [], [], []
        for i, sk in enumerate(ops_sk):
            (_oid, _name, kind, dtype, _module, unk, device, stream, fkeys, reads, writes, ranks, attrs_sk, _ff) = sk
            offs[i] = off
            kinds.append(kind)
            views[i] = kind == "view"
            unknown[i] = bool(unk)
            lanes_of.append((device, stream))
            p = off + 3
            for k in fkeys:
                flop_leaf.append(p)
                flop_op.append(i)
                flop_pair_key.append((k, dtype))
                p += 1
            for is_read, accesses in ((True, reads), (False, writes)):
                for t, r in accesses:
                    acc_leaf.append(p)
                    acc_role.append(r)
                    acc_op.append(i)
                    acc_read.append(is_read)
                    acc_tensor.append(t)
                    p += 1
            p += sum(ranks)
            if kind == "@matmul":
                mm.append((i, p + _attr_leaf(attrs_sk, "m"), p + _attr_leaf(attrs_sk, "n")))
            p += _leaf_count(attrs_sk)
            off = p
        offs[n] = off
        self.offs = offs
        self.kinds = kinds
        # "@matmul" ops turn matmul or gemv by their rows, a library kernel either way
        self.library = np.array([k in LIBRARY_KINDS or k == "@matmul" for k in kinds], dtype=bool)
        self.views = views
        self.unknown = unknown
        self.mm = mm
        self.lanes = list(dict.fromkeys(lanes_of))
        self.single_lane = len(self.lanes) <= 1
        self.acc_leaf = np.array(acc_leaf, dtype=np.int64)
        self.acc_op = np.array(acc_op, dtype=np.int64)
        self.acc_read = np.array(acc_read, dtype=bool)
        self.acc_role = acc_role
        self.acc_tensor = acc_tensor
        self.roles = list(dict.fromkeys(acc_role))
        code = {r: i for i, r in enumerate(self.roles)}
        self.acc_code = np.array([code[r] for r in acc_role], dtype=np.int64)
        # accesses of non-view ops, in program order: the floors' inputs
        self.floor_acc = np.flatnonzero(~views[self.acc_op]) if len(acc_op) else np.zeros(0, dtype=np.int64)
        self.flop_leaf = np.array(flop_leaf, dtype=np.int64)
        self.flop_op = np.array(flop_op, dtype=np.int64)
        pairs: dict[tuple[str, str], int] = {}
        self.flop_pair = np.array([pairs.setdefault(k, len(pairs)) for k in flop_pair_key], dtype=np.int64)
        self.flop_pairs = list(pairs)
        self.flop_nonview = ~views[self.flop_op] if len(flop_op) else np.zeros(0, dtype=bool)
        self.launch_leaf = offs[:n]
        self._residency_structure(ops_sk)
        self._classes(ops_sk)
        self._liveness(ops_sk)

    def _residency_structure(self, ops_sk) -> None:
        """For each read access: the op whose end is the position of the tensor's last
        write (``-1``: never written in the step) and the write accesses whose largest
        byte count that write covered (views alias their source); ``simulator.cache.residency``."""
        written: dict[str, tuple[int, tuple[int, ...]]] = {}
        rd_pos, rd_cover, rd_acc = [], [], []
        a = 0
        for i, sk in enumerate(ops_sk):
            reads, writes = sk[9], sk[10]
            for t, _r in reads:
                w = written.get(t)
                rd_acc.append(a)
                rd_pos.append(-1 if w is None else w[0])
                rd_cover.append(() if w is None else w[1])
                a += 1
            wfirst = a
            if sk[2] == "view":
                src = written.get(reads[0][0]) if reads else None
                if src is not None:
                    for j, (t, _r) in enumerate(writes):
                        written[t] = (src[0], src[1] + (wfirst + j,))
                a += len(writes)
                continue
            for j, (t, _r) in enumerate(writes):
                written[t] = (i, (wfirst + j,))
            a += len(writes)
        width = max((len(c) for c in rd_cover), default=0) or 1
        cover = np.full((len(rd_cover), width), -1, dtype=np.int64)
        for r, c in enumerate(rd_cover):
            cover[r, : len(c)] = c
        self.rd_acc = np.array(rd_acc, dtype=np.int64)
        self.rd_pos = np.array(rd_pos, dtype=np.int64)
        self.rd_cover = cover
        self.rd_op = self.acc_op[self.rd_acc] if len(rd_acc) else np.zeros(0, dtype=np.int64)
        # reads of one tensor by one op share their bit (the resident set is a set of names)
        slot: dict[tuple[int, str], int] = {}
        self.rd_slot = np.array([slot.setdefault((int(self.acc_op[r]), self.acc_tensor[r]), len(slot))
                                 for r in rd_acc], dtype=np.int64)
        self.n_slots = len(slot)
        # bit of each read within its op (for the class-and-residency group key)
        bit = np.zeros(len(rd_acc), dtype=np.int64)
        seen: dict[int, int] = {}
        for r, op in enumerate(self.rd_op.tolist()):
            bit[r] = seen.get(op, 0)
            seen[op] = bit[r] + 1
        self.rd_bit = bit
        self.max_reads = max(seen.values(), default=0)

    def _classes(self, ops_sk) -> None:
        c64 = self.family._int64
        coef = self.family.coef
        ids: dict[tuple, int] = {}
        cls = np.empty(self.n, dtype=np.int64)
        for i, sk in enumerate(ops_sk):
            lo, hi = int(self.offs[i]), int(self.offs[i + 1])
            poly = c64[lo:hi].tobytes() if c64 is not None else tuple(tuple(int(c) for c in row) for row in coef[lo:hi])
            key = (sk[1], sk[2], sk[3], sk[5], sk[6], sk[7], sk[8], tuple(r for _t, r in sk[9]),
                   tuple(r for _t, r in sk[10]), sk[11], sk[12], sk[13], poly)
            cls[i] = ids.setdefault(key, len(ids))
        self.cls = cls
        self.n_classes = len(ids)

    def _liveness(self, ops_sk) -> None:
        """``footprint._peak_activation_bytes`` structure: per activation tensor its first
        writer, last user and the write accesses whose largest size it keeps."""
        born: dict[str, int] = {}
        last: dict[str, int] = {}
        sizes: dict[str, list[int]] = {}
        a = 0
        for i, sk in enumerate(ops_sk):
            reads, writes = sk[9], sk[10]
            wfirst = a + len(reads)
            for j, (t, r) in enumerate(writes):
                if r in ("activation", "output"):
                    born.setdefault(t, i)
                    last[t] = max(last.get(t, i), i)
                    sizes.setdefault(t, []).append(wfirst + j)
            for t, _r in reads:
                if t in born:
                    last[t] = i
            a = wfirst + len(writes)
        names = list(born)
        width = max((len(sizes[t]) for t in names), default=0) or 1
        self.live_born = np.array([born[t] for t in names], dtype=np.int64)
        self.live_last = np.array([last[t] for t in names], dtype=np.int64)
        cov = np.full((len(names), width), -1, dtype=np.int64)
        for k, t in enumerate(names):
            cov[k, : len(sizes[t])] = sizes[t]
        self.live_sizes = cov

    def at(self, batch: int, length: int, step: dict[str, Any]) -> FamilyPoint:
        return FamilyPoint(self, batch, length, step)


def _gather_max(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row-wise max of ``values[idx]`` with ``-1`` entries ignored (0 for an empty row)."""
    if idx.size == 0:
        return np.zeros(idx.shape[0])
    v = np.where(idx >= 0, values[np.maximum(idx, 0)], -np.inf)
    out = v.max(axis=1)
    return np.where(np.isfinite(out), out, 0.0)


class _NoDepsView(Sequence):
    """``[[]] * n`` without building it: a family point's single stream has no cross-lane dependencies."""

    __slots__ = ("n",)
    _EMPTY: list = []

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [[] for _ in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self._EMPTY


class FamilyPoint:
    """One step of a family at (batch, length) as the arrays ``simulate`` reads
    (``simulator.engine.GraphArrays``' fields), its meta, and its ops on demand."""

    def __init__(self, fa: FamilyArrays, batch: int, length: int, step: dict[str, Any]) -> None:
        fam = fa.family
        self.fa = fa
        self.batch, self.length, self.step = batch, length, dict(step)
        leaves = fam.leaves(batch, length)
        if leaves.dtype == object:
            leaves = np.array([float(v) for v in leaves], dtype=float)
        self.leaves = leaves
        lf = leaves.astype(float)
        self._lf = lf
        vals = iter(leaves[: fa.meta_leaves].tolist())
        meta = _value_make(fam.skeleton[0], vals)
        for k in STEP_KEYS:
            if k in step:
                meta[k] = step[k]
        ordered = {k: meta[k] for k in fam.extra.get("meta_order", list(meta)) if k in meta}
        ordered.update(meta)
        self.meta = ordered
        n = self.n = fa.n
        self.lane = np.zeros(n, dtype=np.int64)
        self.lanes = list(fa.lanes) or [(0, 0)]
        self.deps = _NoDepsView(n)
        self.has_deps = False
        self.launches = lf[fa.launch_leaf]
        acc = lf[fa.acc_leaf] if len(fa.acc_leaf) else np.zeros(0)
        self.acc_all = acc
        self.bytes = np.bincount(fa.acc_op, weights=acc, minlength=n) if len(acc) else np.zeros(n)
        fv = lf[fa.flop_leaf] if len(fa.flop_leaf) else np.zeros(0)
        self.flops = np.bincount(fa.flop_op, weights=fv, minlength=n) if len(fv) else np.zeros(n)
        keep = fa.flop_nonview & (fv > 0) if len(fv) else np.zeros(0, dtype=bool)
        self.flop_vals, self.flop_pair, self.flop_pairs = fv[keep], fa.flop_pair[keep], fa.flop_pairs
        self.acc_bytes = acc[fa.floor_acc] if len(acc) else acc
        self.acc_code = fa.acc_code[fa.floor_acc] if len(acc) else fa.acc_code
        self.roles = fa.roles
        self.unknown = fa.unknown
        kinds = list(fa.kinds)
        for i, mi, ni in fa.mm:
            kinds[i] = _matmul_kind(leaves[mi], leaves[ni])
        self.kinds = kinds
        self.library = fa.library
        self.kernels = int(leaves[fa.launch_leaf].sum())
        self.flops_total = float(np.cumsum(self.flops)[-1]) if n else 0.0
        self.bytes_total = float(self.bytes.sum())
        self._ops = None
        self._built: dict[int, Op] = {}

    # graph-like
    @property
    def ops(self) -> list[Op]:
        if self._ops is None:
            self._ops = self.fa.family.graph(self.batch, self.length, self.step).ops
        return self._ops

    def op(self, i: int) -> Op:
        """Op ``i`` built alone (the cost model's representative of its group); remembered,
        so treat it as read-only."""
        got = self._built.get(i)
        if got is None:
            fa = self.fa
            lo, hi = int(fa.offs[i]), int(fa.offs[i + 1])
            got = self._built[i] = make_op(fa.family.skeleton[1][i], iter(self.leaves[lo:hi].tolist()))
        return got

    def edges(self) -> list[tuple[int, int]]:
        return []

    @property
    def peak_activation_bytes(self) -> float:
        """``footprint._peak_activation_bytes`` of this step, from the arrays."""
        fa = self.fa
        if not len(fa.live_born):
            return 0.0
        size = _gather_max(self._lf, np.where(fa.live_sizes >= 0, fa.acc_leaf[np.maximum(fa.live_sizes, 0)], -1))
        delta = np.zeros(self.n + 1)
        np.add.at(delta, fa.live_born, size)
        np.add.at(delta, fa.live_last + 1, -size)
        return float(max(0.0, np.cumsum(delta).max()))

    def residency(self, llc: float) -> np.ndarray:
        """Per read access: still in the last-level cache (``simulator.cache.residency``, in
        arrays: the same stack-distance rule, read by read)."""
        fa = self.fa
        if not len(fa.rd_acc):
            return np.zeros(0, dtype=bool)
        op_bytes = np.where(fa.views, 0.0, self.bytes)
        cum_after = np.cumsum(op_bytes)
        cum_before = cum_after - op_bytes
        warm = float(cum_after[-1]) <= llc
        need = self.acc_all[fa.rd_acc]
        cover = _gather_max(self.acc_all, fa.rd_cover)
        pos = fa.rd_pos
        res = np.where(pos < 0, warm,
                       (cum_before[fa.rd_op] - cum_after[np.maximum(pos, 0)] <= llc) & (need <= cover))
        slot = np.zeros(fa.n_slots, dtype=bool)
        np.logical_or.at(slot, fa.rd_slot, res)
        return slot[fa.rd_slot]
