"""Fit the cost model's own parameters to measured rows: least squares on log time.

There is no mirror of the model here. The objective is ``validation.predict.row_times``
(the function ``validate`` uses) under a ``simulator.params.Params`` whose overrides
come from a parameter vector: ``Objective.predict(theta)``. ``Objective.theta_of(spec)``
reads the same vector back out of a spec, so a written spec and the vector predict
exactly alike (a test checks it on every committed dataset).

What the vector holds (``Slot``): every parameter the training rows' terms name and
depend on. A curve (a memory level, a compute unit, a per-kind compute curve, a link)
gets knots at the sizes its rows read it at: one per ``DECADES_PER_KNOT`` decades,
at most ``MAX_KNOTS``, and never more than a third of the training rows behind it
(a curve with fewer than ``ROWS_PER_KNOT`` rows is not fitted). Scalars (kernel latency,
host overheads, atomic rates, the overlap exponent, link latencies) get one entry.

Guards:

* a rate may not exceed its datasheet peak: the peak is the upper bound, and a knot
  that ends there is reported as a model error (the data ask for more than the
  hardware has, so a term is missing), never written over the peak;
* a parameter no training row is sensitive to is held at the base spec's value and
  reported (its term never binds: e.g. L1 bandwidth under dispatch overhead);
* rows whose repeat spread exceeds ``NOISY_SPREAD`` are not fitted (a noisy median
  would bend the curve); they are still predicted and reported.

Why one module over 400 lines: the vector's layout (``Slot``), the objective over it,
the choice of slots and knots from the training rows and the solve with its guards are
one procedure that shares the slot index; apart, each would need the others' internals.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from hw_models import physics
from hw_models.spec import SystemSpec
from simulator.params import Params

from .harness.timing import NOISY_SPREAD
from .predict import row_times
from .rows import RowSet, build_rowset

#: knots per curve: one per this many decades of size its rows cover, at most MAX_KNOTS
DECADES_PER_KNOT = 1.25
MAX_KNOTS = 4
#: no curve gets more knots than (training rows behind it) / ROWS_PER_KNOT
ROWS_PER_KNOT = 3
#: training rows of one (unit, efficiency key) needed to give that key its own compute curve
MIN_KIND_ROWS = 3
#: kinds whose ops may get a curve per op name (an elementwise op's cost depends on its
#: function) or per phase (attention: decode is a GEMV over the cache, prefill square tiles)
NAMED_KINDS = ("elementwise", "attention")
#: weight of the smoothness penalty on the log-rate step between neighbouring knots
SMOOTHNESS = 0.02
#: weight of a weak prior pulling each parameter toward the base spec, per e-fold: it
#: decides only what the data leave open (a tiny op's math under its dispatch overhead);
#: a factor of e away from the base costs what a 1% miss on one row does
PRIOR = 0.01
#: a parameter is identifiable when a 10% change of it moves some training row by at least this share of 10%
SENSITIVE = 0.02
#: how far scalars may move from the base spec (a factor)
SCALAR_RANGE = 1e3
#: how far below its peak a curve's rate may fall (a factor)
CURVE_RANGE = 1e5
#: a knot within this log distance of its peak counts as "at the peak"
AT_PEAK = math.log(1.01)


class FitError(ValueError):
    user_facing = True


@dataclass
class Slot:
    """One parameter of the vector: a curve (``knots`` in log10 size) or a scalar (``knots`` None)."""

    key: str
    knots: list[float] | None
    lo: np.ndarray
    hi: np.ndarray
    rows: int = 0
    #: held at the base spec's value (no training row is sensitive to it): it overrides
    #: nothing, so the objective prices with the base's own curve, as the written spec does
    fixed: bool = False

    @property
    def size(self) -> int:
        return 1 if self.knots is None else len(self.knots)


def _interp(xs: np.ndarray, rs: np.ndarray, x: float) -> float:
    return float(rs[0]) if len(xs) == 1 else float(np.interp(x, xs, rs))


class Objective:
    """Predicted seconds of a ``RowSet`` as a function of a log-parameter vector."""

    def __init__(self, rs: RowSet, base: SystemSpec, slots: list[Slot]) -> None:
        self.rs = rs
        self.base = base
        self.slots = slots
        self.index: dict[str, slice] = {}
        i = 0
        for s in slots:
            self.index[s.key] = slice(i, i + s.size)
            i += s.size
        self.n = i
        self._base: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def overrides(self, theta: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in self.slots:
            if s.fixed:
                continue
            v = np.exp(theta[self.index[s.key]])
            out[s.key] = float(v[0]) if s.knots is None else self._extend(s, v)
        return out

    def _extend(self, s: Slot, rates: np.ndarray) -> tuple[list[float], list[float]]:
        """A curve's knots, continued beyond the sizes the rows cover by the base spec's own
        curve scaled to meet the end knots: the data speak for their range; outside it the
        base's shape (e.g. small transfers rolling off) carries on from where they left off."""
        xs, rs = self._base_curve(s.key)
        lo, hi = s.knots[0], s.knots[-1]
        below = [(x, r * rates[0] / _interp(xs, rs, lo)) for x, r in zip(xs, rs, strict=True) if x < lo - 1e-9]
        above = [(x, r * rates[-1] / _interp(xs, rs, hi)) for x, r in zip(xs, rs, strict=True) if x > hi + 1e-9]
        pts = below + list(zip(s.knots, rates.tolist(), strict=True)) + above
        peak = Params(self.base).peak(s.key)
        return [p[0] for p in pts], [min(p[1], peak) for p in pts]

    def _base_curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        c = self._base.get(key)
        if c is None:
            c = self._base[key] = Params(self.base).curve(key)
        return c

    def params(self, theta: np.ndarray) -> Params:
        return Params(self.base, self.overrides(theta))

    def predict(self, theta: np.ndarray) -> np.ndarray:
        return row_times(self.rs, self.params(theta))

    def theta_of(self, spec: SystemSpec) -> np.ndarray:
        """The vector that ``spec`` holds: its rates at the knots, its scalars."""
        p = Params(spec)
        theta = np.empty(self.n)
        for s in self.slots:
            sl = self.index[s.key]
            if s.knots is None:
                theta[sl] = math.log(p.scalar(s.key))
            else:  # the curve itself, before any link cap (overrides replace the curve)
                theta[sl] = np.log(physics.curve_rate(*p.curve(s.key), 10.0 ** np.asarray(s.knots)))
        return theta


@dataclass
class FitResult:
    objective: Objective
    theta: np.ndarray
    free: np.ndarray
    n_rows: int
    cost: float
    seconds: float
    kind_curves: dict[str, frozenset[str]]
    #: curve keys with a knot that ended at the datasheet peak (the data want more than the hardware has)
    at_peak: list[str] = field(default_factory=list)
    #: parameters no training row depends on; held at the base spec's value
    unidentified: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, Any]:
        """Fitted parameters only (free slots), as ``Params`` overrides."""
        ov = self.objective.overrides(self.theta)
        return {s.key: ov[s.key] for s in self.objective.slots if self.free[self.objective.index[s.key]].any()}

    def rows_behind(self, key: str) -> int:
        return next((s.rows for s in self.objective.slots if s.key == key), 0)

    def params_table(self) -> list[dict[str, Any]]:
        out = []
        for key, v in sorted(self.values.items()):
            unit = _unit_of(key)
            if isinstance(v, tuple):
                for x, r in zip(*v, strict=True):
                    out.append({"parameter": f"{key} @ {10 ** x:.3g}", "value": r, "unit": unit})
            else:
                out.append({"parameter": key, "value": v, "unit": unit})
        return out

    def to_doc(self) -> dict[str, Any]:
        """The vector's layout and values (``fit.json``), enough to rebuild the objective."""
        obj = self.objective
        return {
            "slots": [{"key": s.key, "knots": s.knots, "rows": s.rows,
                       "free": bool(self.free[obj.index[s.key]].any()),
                       "log_value": self.theta[obj.index[s.key]].tolist()} for s in obj.slots],
            "kind_curves": {k: sorted(v) for k, v in self.kind_curves.items() if v},
            "at_peak": self.at_peak,
            "unidentified": self.unidentified,
            "n_rows": self.n_rows,
            "cost": self.cost,
            "seconds": self.seconds,
        }


def _unit_of(key: str) -> str:
    if key.startswith(("level:", "tier:", "link:", "pim:") ) and not key.endswith(("mode_switch", "peak")):
        return "B/s"
    if key.startswith("unit:") or key.endswith(".peak"):
        return "FLOP/s"
    if key.startswith("atomics."):
        return "/s"
    if key == "overlap":
        return ""
    return "s"


# -- which rows and which parameters ----------------------------------------------------------


def training_mask(rs: RowSet) -> np.ndarray:
    r = rs.rows
    ok = (~r["held_out"].to_numpy(bool)) & (r["measured_s"].to_numpy(float) > 0)
    noisy = r["spread"].to_numpy(float) > NOISY_SPREAD
    # a pageable host copy takes a staging path the pinned link spec does not describe
    pageable = (r["family"].to_numpy() == "transfer") & ~r["pinned"].to_numpy(bool)
    return ok & ~noisy & ~pageable


def _fit_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if "." not in k or k.split(".", 1)[0] in NAMED_KINDS)


def kind_groups(rs: RowSet, train: np.ndarray) -> dict[str, frozenset[str]]:
    """Per unit label, the efficiency keys with at least ``MIN_KIND_ROWS`` training rows of
    their own: each gets a compute curve; rarer keys share the unit's generic curve."""
    term_rows: dict[int, set[int]] = {}
    for j, i in zip(rs.op_term.tolist(), rs.op_row.tolist(), strict=True):
        if train[i]:
            term_rows.setdefault(j, set()).add(i)
    counts: dict[tuple[str, str], set[int]] = {}
    for j, rows in term_rows.items():
        t = rs.table.terms[j]
        if not t.compute or not t.unit or t.unit == "pim":
            continue
        for k in _fit_keys(t.keys):
            counts.setdefault((t.unit, k), set()).update(rows)
    out: dict[str, set[str]] = {}
    for (unit, k), rows in counts.items():
        if len(rows) >= MIN_KIND_ROWS:
            out.setdefault(unit, set()).add(k)
    return {u: frozenset(v) for u, v in out.items()}


def _key_sizes(rs: RowSet, train: np.ndarray) -> tuple[dict[str, list[float]], dict[str, set[int]]]:
    """Per parameter key: the sizes training rows read it at, and the rows that do."""
    t = rs.table
    term_rows: dict[int, set[int]] = {}
    for j, i in zip(rs.op_term.tolist(), rs.op_row.tolist(), strict=True):
        if train[i]:
            term_rows.setdefault(j, set()).add(i)
    sizes: dict[str, list[float]] = {}
    rows: dict[str, set[int]] = {}

    def add(key: str, op: int, size: float | None) -> None:
        r = term_rows.get(int(op))
        if not r:
            return
        rows.setdefault(key, set()).update(r)
        if size is not None:
            sizes.setdefault(key, []).append(float(size))

    fo, fk, _ = t.fixed
    for key, idx in fk.items():
        for j in idx:
            add(key, fo[j], None)
    co, _, ck, cs, _, cok, cob = t.comp
    for key, idx in ck.items():
        for j in idx:
            add(key, co[j], cs[j])
    for key, idx in cok.items():
        for j in idx:
            add(key, co[j], cob[j])
    do, _, dk, ds, _ = t.dem
    for key, idx in dk.items():
        for j in idx:
            add(key, do[j], ds[j])
    for i, _a in t.atomic:
        add("atomics.update_rate", i, None)
        add("atomics.same_address_rate", i, None)
    for i, (tier, *_r) in t.pim:
        for w in ("internal", "peak", "mode_switch"):
            add(f"pim:{tier}.{w}", i, None)
    for i, (_k, _n, size, _res, eager, custom) in t.coll:
        add("link:interconnect", i, size)
        add("latency:link:interconnect", i, None)
        add(("eager_call_latency" if eager else "call_latency") + ":link:interconnect", i, None)
        if custom:
            add("custom_latency:link:interconnect", i, None)
    all_rows = set(np.flatnonzero(train).tolist())
    timing = rs.rows["timing"].to_numpy()
    for key, timings in (("host.op_dispatch", ("loop", "once")), ("host.dispatch", ("step",)),
                         ("host.graph_node", ("graph",)), ("host.graph_launch", ("graph",))):
        r = {i for i in all_rows if timing[i] in timings}
        if r:
            rows[key] = r
    lib = {int(i) for i in np.unique(rs.op_row[rs.op_library & (rs.op_launches > 0)])}
    r = {i for i in all_rows & lib if timing[i] in ("loop", "once", "step")}
    if r:
        rows["host.library_call"] = r
    both = {r for j, rs_ in term_rows.items() if t.terms[j].matrix and t.terms[j].demands for r in rs_}
    if both:
        rows["overlap"] = both
    return sizes, rows


def knots_for(sizes: list[float], n_rows: int) -> list[float]:
    """Knot positions (log10) on sizes the rows have: one per ``DECADES_PER_KNOT`` decades,
    at most ``MAX_KNOTS`` and at most a third of the rows behind the curve."""
    u = np.unique(np.round(np.log10(np.maximum(sizes, 1.0)), 3))
    cap = min(MAX_KNOTS, n_rows // ROWS_PER_KNOT, len(u))
    span = float(u[-1] - u[0])
    k = max(1, min(int(np.ceil(span / DECADES_PER_KNOT)) + 1, cap))
    if k == 1:
        return [float(np.median(u))]
    picks = np.unique(np.round(np.linspace(0, len(u) - 1, k)).astype(int))
    return [float(u[i]) for i in picks]


def _slots(rs: RowSet, train: np.ndarray, base: SystemSpec, p0: Params) -> tuple[list[Slot], list[str]]:
    sizes, rows = _key_sizes(rs, train)
    slots, notes = [], []
    for key in sorted(rows):
        n = len(rows[key])
        if key.startswith("tier:"):
            continue  # a far tier's memory has no efficiency to fit: its bandwidth is its datasheet figure
        if key in sizes and n < ROWS_PER_KNOT:
            notes.append(f"{key}: only {n} training row(s) depend on it; kept the base spec's value")
            continue
        if key in sizes:
            kn = knots_for(sizes[key], n)
            peak = p0.peak(key)
            slots.append(Slot(key, kn, np.full(len(kn), math.log(peak / CURVE_RANGE)), np.full(len(kn), math.log(peak)),
                              n))
        else:
            v = p0.scalar(key)
            if key == "overlap":
                lo, hi = 0.0, math.log(64.0)
            else:
                lo, hi = math.log(v / SCALAR_RANGE), math.log(v * SCALAR_RANGE)
            slots.append(Slot(key, None, np.array([lo]), np.array([hi]), n))
    return slots, notes


def _start(obj: Objective, rs: RowSet, train: np.ndarray) -> np.ndarray:
    """The base spec's vector, with each per-kind compute curve lowered to the slowest rate
    its single-op training rows allow (all their unexplained time as compute), so a compute
    term hidden under memory at the base guess (exp at ~1 ns per element on a CPU) is
    still found (the prior toward the base, ``PRIOR``, lifts it back where no row needs it)."""
    theta = obj.theta_of(obj.base)
    co, _, ck, cs, cw, _, _ = rs.table.comp
    ops_per_row = np.bincount(rs.op_row, minlength=rs.n)
    term_row = np.full(rs.table.n, -1)
    term_row[rs.op_term] = rs.op_row
    measured = rs.rows["measured_s"].to_numpy(float)
    for s in obj.slots:
        if s.knots is None or "@" not in s.key or s.key not in ck:
            continue
        idx = ck[s.key]
        r = term_row[co[idx]]
        ok = r >= 0
        rr = np.maximum(r, 0)
        m = ok & train[rr] & (ops_per_row[rr] == 1)
        if not m.any():
            continue
        rate = cw[idx][m] / measured[r[m]]
        logs = np.log10(np.maximum(cs[idx][m], 1.0))
        near = np.abs(logs[:, None] - np.asarray(s.knots)[None, :]).argmin(axis=1)
        sl = obj.index[s.key]
        for i in range(s.size):
            if (near == i).any():
                theta[sl.start + i] = min(theta[sl.start + i], math.log(np.median(rate[near == i])))
    return theta


def sensitivity(obj: Objective, theta: np.ndarray, rows: np.ndarray, step: float = 0.1) -> np.ndarray:
    """Per vector entry: the largest |d log t_row| / |d log theta| over ``rows``, moving the
    entry both ways (a rate held at its peak only shows its effect going down)."""
    base = np.log(obj.predict(theta)[rows])
    out = np.zeros(len(theta))
    for j in range(len(theta)):
        for d in (step, -step):
            th = theta.copy()
            th[j] += d
            out[j] = max(out[j], float(np.max(np.abs(np.log(obj.predict(th)[rows]) - base))) / step)
    return out


def fit(rs: RowSet, traced, base: SystemSpec, *, loss: str = "soft_l1") -> FitResult:
    """Fit ``base``'s parameters to the training rows of ``rs`` (``traced`` rebuilds it
    with the per-kind compute curves the fit chooses).

    Rounds: fit; a per-kind curve that no training row depends on at the solution is
    dropped (its ops share the unit's generic curve) and the fit runs again. Knots of the
    final solution that no row depends on (their term never binds) are raised to the base
    spec's value where that is faster, which changes no training prediction: the fit only
    says such a rate is at least what it found, and a rate just under the next term would
    make every untrained size slower than anything measured.
    """
    t0 = time.perf_counter()
    train = training_mask(rs)
    if train.sum() < 3:
        raise FitError(f"only {int(train.sum())} usable training rows; measure more cases")
    rows = np.flatnonzero(train)
    kinds = kind_groups(rs, train)
    p0 = Params(base)
    for round_ in range(3):
        rs = build_rowset(traced, base, kinds, rs.notes)
        slots, notes = _slots(rs, train, base, p0)
        obj = Objective(rs, base, slots)
        theta, free, cost = _solve(obj, rs, train, rows, loss)
        sens = sensitivity(obj, theta, rows)
        # a per-kind curve the fit could not move, or that binds no row at the solution, is
        # not evidence that the kind differs from its unit: its ops share the generic curve
        dead = {s.key for s in slots if "@" in s.key
                and (sens[obj.index[s.key]].max() < SENSITIVE or not free[obj.index[s.key]].any())}
        if not dead or round_ == 2:
            break
        kinds = {u: frozenset(k for k in ks if f"unit:{u}@{k}" not in dead) for u, ks in kinds.items()}
    # a kind key no op ended up priced with (a more specific key took its ops) is not a curve
    used = {s.key for s in slots}
    kinds = {u: frozenset(k for k in ks if f"unit:{u}@{k}" in used) for u, ks in kinds.items()}
    base_theta = obj.theta_of(base)
    lo, hi = _bounds(slots)
    for s in slots:
        if s.knots is None:
            continue
        sl = obj.index[s.key]
        loose = sens[sl] < SENSITIVE
        theta[sl] = np.where(loose, np.minimum(np.maximum(theta[sl], base_theta[sl]), hi[sl]), theta[sl])
    unidentified = sorted({s.key for s in slots if not free[obj.index[s.key]].any()})
    for s in slots:
        s.fixed = s.key in unidentified
    at_peak = sorted({s.key for s in slots if s.knots is not None
                      and ((hi[obj.index[s.key]] - theta[obj.index[s.key]] < AT_PEAK)
                           & (sens[obj.index[s.key]] >= SENSITIVE)).any()})
    notes += [f"{k}: no training row is sensitive to it; held at the base spec's value" for k in unidentified]
    notes += [f"{k}: the fit wants more than the datasheet peak; the peak is kept and a term is missing "
              "from the model (model error)" for k in at_peak]
    return FitResult(obj, theta, free, int(len(rows)), cost, time.perf_counter() - t0, kinds, at_peak, unidentified,
                     notes)


def _solve(obj: Objective, rs: RowSet, train: np.ndarray, rows: np.ndarray, loss: str
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares on log time over the free entries; returns (theta, free mask, cost)."""
    lo, hi = _bounds(obj.slots)
    start = np.clip(_start(obj, rs, train), lo + 1e-9, hi - 1e-9)
    free = sensitivity(obj, start, rows) >= SENSITIVE
    measured = np.log(rs.rows["measured_s"].to_numpy(float)[rows])
    theta = start.copy()
    prior = np.clip(obj.theta_of(obj.base), lo, hi)[free]
    steps = [obj.index[s.key] for s in obj.slots if s.knots is not None and s.size > 1]

    def resid(x: np.ndarray) -> np.ndarray:
        theta[free] = x
        r = np.log(obj.predict(theta)[rows]) - measured
        return np.concatenate([r, PRIOR * (x - prior)] + [SMOOTHNESS * np.diff(theta[sl]) for sl in steps])

    if not free.any():
        return theta, free, float(0.5 * np.sum((np.log(obj.predict(theta)[rows]) - measured) ** 2))
    sol = least_squares(resid, start[free], bounds=(lo[free], hi[free]), loss=loss, f_scale=0.1, x_scale=1.0,
                        max_nfev=200 * (int(free.sum()) + 1))
    theta[free] = sol.x
    return theta, free, float(sol.cost)


def _bounds(slots: list[Slot]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([s.lo for s in slots]), np.concatenate([s.hi for s in slots])
