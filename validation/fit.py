"""Fit a SystemSpec's rates and overheads to measured rows (least squares on log time).

The fit runs a vectorised mirror of the cost model's formula for one op,

    t_op = launches x kernel_latency + max(work_flops / R_unit,kind(flops),
                                           max_level bytes_l / B_level(bytes_l),
                                           atomic(updates, distinct))

where ``R_unit`` and ``B_level`` are effective rates interpolated linearly in log10(size)
between knots, exactly as ``EfficiencyCurve`` interpolates efficiency, so the fitted knots
become the spec's efficiency points unchanged. Compute rates are fitted per unit and op
kind (``compute_groups``): softmax, layer_norm, gelu, GEMV and GEMM each get their own
curve where the training data has enough of them. A row is its ops plus the host's dispatch
overhead per launch: added to the kernels on a CPU device (the thread that dispatches is
the thread that computes), overlapped with them on a GPU (a steady-state launch loop).
Which memory level serves which bytes is the cost model's own rule (read once from the
base spec, capacities are not fitted). After the fit, ``validation.predict`` checks the
spec through the real cost model, not through this mirror.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from hw_models.spec import SystemSpec

from .features import OpFeatures

#: knots per efficiency curve: one per this many decades of size covered by the data, 1..4
DECADES_PER_KNOT = 1.25
MAX_KNOTS = 4
#: weight of the smoothness penalty on the log-rate step between neighbouring knots: a
#: tenfold step costs about as much as a 5% miss on one row, so data always wins over it
SMOOTHNESS = 0.02
#: training ops of one (unit, efficiency key) needed to give that key its own compute
#: curve (``ComputeUnit.kind_efficiency``); rarer keys share the unit's generic curve
MIN_KIND_OPS = 3
#: kinds whose ops get a curve per op name: an elementwise op's cost per element depends
#: on its function (exp, gelu: transcendentals; add, mul: one instruction), while a GEMM is a
#: GEMM whether traced as mm or addmm
NAMED_KINDS = ("elementwise",)
#: row families issued from model code (Python modules around every op)
MODEL_FAMILIES = ("framework", "model")


@dataclass
class RowFeatures:
    case_id: str
    family: str
    measured_s: float
    ops: list[OpFeatures]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    #: group -> (log10 size knots, effective rate at each knot); groups "level:l2", "unit:matrix.fp32"
    curves: dict[str, tuple[list[float], list[float]]]
    dispatch_s: float | None
    #: per-launch host time inside nn.Module model code (None: no framework rows)
    framework_s: float | None
    kernel_latency_s: float
    update_rate: float | None
    same_address_rate: float | None
    graph_node_s: float | None
    link_bw: float | None
    link_latency_s: float | None
    n_rows: int
    cost: float
    serial_host: bool
    rows_per_group: dict[str, int] = field(default_factory=dict)
    #: curves no training row depends on; they keep the base spec's values
    unidentified: list[str] = field(default_factory=list)

    def params_table(self) -> list[dict[str, Any]]:
        out = []
        for g, (xs, rs) in sorted(self.curves.items()):
            for x, r in zip(xs, rs, strict=True):
                unit = "B/s" if g.startswith("level:") else "FLOP/s"
                out.append({"parameter": f"{g} @ {10 ** x:.3g}", "value": r, "unit": unit})
        for name, v, unit in (
            ("host.op_dispatch (bare op)", self.dispatch_s, "s"),
            ("host.dispatch_overhead (in model code)", self.framework_s, "s"),
            ("device.kernel_latency (held)", self.kernel_latency_s, "s"),
            ("atomics.update_rate", self.update_rate, "/s"),
            ("atomics.same_address_rate", self.same_address_rate, "/s"),
            ("host.graph_node_cost", self.graph_node_s, "s"),
            ("link bandwidth", self.link_bw, "B/s"),
            ("link latency", self.link_latency_s, "s"),
        ):
            if v is not None:
                out.append({"parameter": name, "value": v, "unit": unit})
        return out


def _knots(logs: np.ndarray) -> list[float]:
    """Knot positions on sizes the training rows have, so no knot floats free between data."""
    u = np.unique(np.round(logs, 3))
    span = float(u[-1] - u[0])
    if span < 0.3:
        return [float(np.median(u))]
    k = min(int(np.ceil(span / DECADES_PER_KNOT)) + 1, MAX_KNOTS, len(u))
    picks = np.unique(np.round(np.linspace(0, len(u) - 1, k)).astype(int))
    return [float(u[i]) for i in picks]


class _Mirror:
    """Flattened features and the parameter vector layout."""

    def __init__(self, rows: list[RowFeatures], base: SystemSpec) -> None:
        self.base = base
        self.serial = base.device.kind == "cpu"
        self.lat = base.device.kernel_latency.value
        op_row, launches, unit, flops, work, upd, dist = [], [], [], [], [], [], []
        dem_op, dem_level, dem_bytes = [], [], []
        self.rows = rows
        self.kind = []  # per row: "ops" | "graph" | "transfer"
        link_rows = []
        for i, r in enumerate(rows):
            if r.family == "transfer":
                self.kind.append("transfer")
                link_rows.append(i)
                continue
            self.kind.append("graph" if r.family == "graph" else "ops")
            for f in r.ops:
                j = len(op_row)
                op_row.append(i)
                launches.append(f.launches)
                flops.append(max(f.flops, 1.0))
                work.append(f.work_flops)
                upd.append(f.updates)
                dist.append(f.distinct)
                for lvl, b in f.demands:
                    dem_op.append(j)
                    dem_level.append(lvl)
                    dem_bytes.append(b)
        groups = compute_groups([f for r in rows if r.family != "transfer" for f in r.ops])
        unit = [g for g, _ in groups]
        self.group_key = dict(groups)
        self.n_rows = len(rows)
        self.op_row = np.asarray(op_row, dtype=int)
        self.launches = np.asarray(launches, dtype=float)
        self.unit = np.asarray(unit, dtype=object)
        self.flops = np.asarray(flops, dtype=float)
        self.work = np.asarray(work, dtype=float)
        self.upd = np.asarray(upd, dtype=float)
        self.dist = np.asarray(dist, dtype=float)
        self.dem_op = np.asarray(dem_op, dtype=int)
        self.dem_level = np.asarray(dem_level, dtype=object)
        self.dem_bytes = np.asarray(dem_bytes, dtype=float)
        self.link_rows = np.asarray(link_rows, dtype=int)
        self.link_bytes = np.asarray([rows[i].ops[0].link_bytes if rows[i].ops else 0.0 for i in link_rows])
        self.measured = np.asarray([r.measured_s for r in rows], dtype=float)
        self.is_graph = np.asarray([k == "graph" for k in self.kind])
        #: rows run from nn.Module model code pay the framework's per-launch time, not the bare dispatch
        self.in_model = np.asarray([r.family in MODEL_FAMILIES for r in rows])
        # parameter layout
        self.slots: dict[str, slice] = {}
        self.knots: dict[str, list[float]] = {}
        x0: list[float] = []
        dev = base.device
        for lvl in sorted(set(self.dem_level)):
            logs = np.log10(np.maximum(self.dem_bytes[self.dem_level == lvl], 1.0))
            kn = _knots(logs)
            level = dev.level(lvl)
            init = [np.log(level.bandwidth.value * level.efficiency(10**k)) for k in kn]
            self._add(f"level:{lvl}", kn, init, x0)
        for u in sorted(set(self.unit)):
            logs = np.log10(self.flops[self.unit == u])
            kn = _knots(logs)
            cu = _unit(dev, u)
            key = self.group_key.get(u)
            curve = cu.curve((key,)) if key else cu.efficiency
            init = [np.log(cu.peak.value * curve(10**k)) for k in kn]
            self._add(f"unit:{u}", kn, init, x0)
        bare = base.host.op_dispatch or base.host.dispatch_overhead
        self._scalar("dispatch", np.log(bare.value), x0)
        self._scalar("framework", np.log(base.host.dispatch_overhead.value), x0)
        self.has_atomics = bool(np.any(self.upd > 0))
        if self.has_atomics:
            self._scalar("update_rate", np.log(dev.atomics.update_rate.value), x0)
            self._scalar("same_rate", np.log(dev.atomics.same_address_rate.value), x0)
        self.has_graph = bool(self.is_graph.any())
        if self.has_graph:
            self._scalar("graph_node", np.log(base.host.graph_node_cost.value), x0)
        self.has_link = len(self.link_rows) > 0
        if self.has_link:
            link = base.tiers[0].link if base.tiers else None
            bw = link.bandwidth.value * link.efficiency.value if link else 10e9
            lat = link.latency.value if link else 5e-6
            self._scalar("link_bw", np.log(bw), x0)
            self._scalar("link_lat", np.log(lat), x0)
        self.x0 = np.asarray(x0, dtype=float)

    def data_init(self) -> np.ndarray:
        """``x0`` with each per-kind compute knot (``unit@key``) lowered to the rate its
        single-op rows imply if all their time were compute (log of the median ``work /
        measured`` of the rows nearest the knot): the slowest the data allow, so the term
        starts visible. A per-kind curve has no estimate of its own (the base spec's generic
        curve is a guess for another mix of ops); the generic curves keep the base guess."""
        x = self.x0.copy()
        ops_in_row = np.bincount(self.op_row, minlength=self.n_rows)
        single = ops_in_row[self.op_row] == 1
        for g, sl in self.slots.items():
            if not g.startswith("unit:") or "@" not in g:
                continue
            m = (self.unit == g[5:]) & single & (self.work > 0)
            if not m.any():
                continue
            kn = np.asarray(self.knots[g])
            logs = np.log10(self.flops[m])
            near = np.abs(logs[:, None] - kn[None, :]).argmin(axis=1)
            rate = self.work[m] / self.measured[self.op_row[m]]
            for i in range(len(kn)):
                if (near == i).any():
                    x[sl.start + i] = np.log(np.median(rate[near == i]))
        return x

    def _add(self, name: str, knots: list[float], init: list[float], x0: list[float]) -> None:
        self.slots[name] = slice(len(x0), len(x0) + len(knots))
        self.knots[name] = knots
        x0.extend(init)

    def _scalar(self, name: str, init: float, x0: list[float]) -> None:
        self.slots[name] = slice(len(x0), len(x0) + 1)
        x0.append(init)

    def _rate(self, theta: np.ndarray, group: str, sizes: np.ndarray) -> np.ndarray:
        kn = self.knots[group]
        rates = np.exp(theta[self.slots[group]])
        if len(kn) == 1:
            return np.full_like(sizes, rates[0])
        return np.interp(np.log10(np.maximum(sizes, 1.0)), kn, rates)

    def _terms(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per op: compute time, memory time (slowest level) and that level's index in dem arrays."""
        n_ops = len(self.op_row)
        comp = np.zeros(n_ops)
        for u in set(self.unit):
            m = self.unit == u
            comp[m] = self.work[m] / self._rate(theta, f"unit:{u}", self.flops[m])
        mem = np.zeros(n_ops)
        dem_t = np.zeros(len(self.dem_op))
        for lvl in set(self.dem_level):
            m = self.dem_level == lvl
            t = self.dem_bytes[m] / self._rate(theta, f"level:{lvl}", self.dem_bytes[m])
            dem_t[m] = t
            np.maximum.at(mem, self.dem_op[m], t)
        return comp, mem, dem_t

    def identified(self, theta: np.ndarray, share: float = 0.25) -> dict[str, int]:
        """Rows in which each curve's term binds and is at least ``share`` of the row's time.

        A curve no row depends on (e.g. L1 bandwidth when every L1 op is buried under the
        dispatch overhead) cannot be told from the data and keeps its base value.
        """
        comp, mem, dem_t = self._terms(theta)
        row_t = self.predict(theta)[self.op_row]
        out: dict[str, int] = {}
        for j in range(len(self.op_row)):
            if comp[j] >= mem[j] and comp[j] >= share * row_t[j]:
                g = f"unit:{self.unit[j]}"
                out[g] = out.get(g, 0) + 1
        for k in range(len(self.dem_op)):
            j = self.dem_op[k]
            if dem_t[k] >= comp[j] and dem_t[k] >= mem[j] and dem_t[k] >= share * row_t[j]:
                g = f"level:{self.dem_level[k]}"
                out[g] = out.get(g, 0) + 1
        return out

    def predict(self, theta: np.ndarray) -> np.ndarray:
        comp, mem, _ = self._terms(theta)
        body = np.maximum(comp, mem)
        if self.has_atomics:
            ur = np.exp(theta[self.slots["update_rate"]][0])
            sr = np.exp(theta[self.slots["same_rate"]][0])
            with np.errstate(divide="ignore", invalid="ignore"):
                per_target = np.where(self.dist > 0, self.upd / np.maximum(self.dist, 1.0), 1.0)
            atomic = np.where(self.upd > 0, np.maximum(self.upd / ur, per_target / sr), 0.0)
            body = np.maximum(body, atomic)
        kern = self.launches * self.lat + body
        disp = np.where(self.in_model[self.op_row], np.exp(theta[self.slots["framework"]][0]),
                        np.exp(theta[self.slots["dispatch"]][0]))
        host = self.launches * disp
        row_kern = np.zeros(self.n_rows)
        row_host = np.zeros(self.n_rows)
        row_launch = np.zeros(self.n_rows)
        np.add.at(row_kern, self.op_row, kern)
        np.add.at(row_host, self.op_row, host)
        np.add.at(row_launch, self.op_row, self.launches)
        if self.serial:
            out = row_kern + row_host
        else:
            out = np.maximum(row_kern, row_host)
        if self.has_graph:
            node = np.exp(theta[self.slots["graph_node"]][0])
            per_node = row_kern / np.maximum(row_launch, 1.0)
            out = np.where(self.is_graph, np.maximum(node, per_node), out)
        if self.has_link:
            bw = np.exp(theta[self.slots["link_bw"]][0])
            lat = np.exp(theta[self.slots["link_lat"]][0])
            out[self.link_rows] = lat + self.link_bytes / bw
        return out

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        r = np.log(self.predict(theta)) - np.log(self.measured)
        steps = [np.diff(theta[sl]) for g, sl in self.slots.items() if sl.stop - sl.start > 1]
        if steps:
            r = np.concatenate([r, SMOOTHNESS * np.concatenate(steps)])
        return r


def compute_groups(ops: list[OpFeatures]) -> list[tuple[str, str | None]]:
    """Per op: (compute group label, efficiency key or None), e.g. ``("vector.fp32@softmax", "softmax")``.

    An op gets the curve of its most specific efficiency key that at least
    ``MIN_KIND_OPS`` training ops share on the same unit, else the unit's generic curve
    (label = unit, key None). The fitted groups become ``kind_efficiency`` entries.
    """
    counts: dict[tuple[str, str], int] = {}
    for f in ops:
        for k in _fit_keys(f.keys):
            counts[(f.unit, k)] = counts.get((f.unit, k), 0) + 1
    out = []
    for f in ops:
        key = next((k for k in _fit_keys(f.keys) if counts.get((f.unit, k), 0) >= MIN_KIND_OPS), None)
        out.append((f"{f.unit}@{key}" if key else f.unit, key))
    return out


def _fit_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys the fit may give a curve: op names only within ``NAMED_KINDS``."""
    return tuple(k for k in keys if "." not in k or k.split(".", 1)[0] in NAMED_KINDS)


def _unit(dev, label: str):
    from hw_models import physics

    kind, dtype = label.split("@", 1)[0].split(".", 1)
    return physics.compute_unit(dev, dtype, matrix=(kind == "matrix"))[0]


def fit(rows: list[RowFeatures], base: SystemSpec, *, loss: str = "soft_l1") -> FitResult:
    """Least squares on log time over ``rows`` (the training split), starting from ``base``."""
    rows = [r for r in rows if r.measured_s > 0 and (r.ops or r.family == "transfer")]
    if not rows:
        raise ValueError("no training rows to fit")
    base = _with_dispatch(rows, base)
    mir = _Mirror(rows, base)
    # rates may move three decades either way from the base spec's guesses
    # the host overheads are settled by stage 1 (rows with no kernel to speak of); the rest
    # cannot trade against them, so they are held out of the optimisation vector
    free = np.ones(len(mir.x0), dtype=bool)
    for name in ("dispatch", "framework"):
        free[mir.slots[name]] = False
    lo, hi = mir.x0 - np.log(1e3), mir.x0 + np.log(1e3)
    # start each compute rate no faster than the data allow: where another term binds at
    # the base guess the max() hides the compute rate from the gradient, and a
    # transcendental op (exp at ~1 ns per element) would never be found compute-bound
    start = np.clip(np.minimum(mir.x0, mir.data_init()), lo + 1e-6, hi - 1e-6)
    x0 = start[free]
    full = start.copy()

    def resid(x: np.ndarray) -> np.ndarray:
        full[free] = x
        return mir.residuals(full)

    sol = least_squares(resid, x0, bounds=(lo[free], hi[free]), loss=loss, f_scale=0.1,
                        x_scale=1.0, max_nfev=400 * (len(x0) + 1))
    th = start.copy()
    th[free] = sol.x
    counts = mir.identified(th)
    curves = {}
    unidentified = []
    for g, sl in mir.slots.items():
        if g.startswith(("level:", "unit:")):
            if counts.get(g, 0) == 0:
                unidentified.append(g)
                continue
            curves[g] = (list(mir.knots[g]), [float(v) for v in np.exp(th[sl])])

    def scalar(name: str) -> float | None:
        return float(np.exp(th[mir.slots[name]][0])) if name in mir.slots else None

    fw = [r for r in rows if r.family in MODEL_FAMILIES]
    return FitResult(
        curves=curves,
        dispatch_s=scalar("dispatch"),
        framework_s=scalar("framework") if fw else None,
        kernel_latency_s=mir.lat,
        update_rate=scalar("update_rate"),
        same_address_rate=scalar("same_rate"),
        graph_node_s=scalar("graph_node"),
        link_bw=scalar("link_bw"),
        link_latency_s=scalar("link_lat"),
        n_rows=len(rows),
        cost=float(sol.cost),
        serial_host=mir.serial,
        rows_per_group=counts,
        unidentified=unidentified,
    )


def _with_dispatch(rows: list[RowFeatures], base: SystemSpec) -> SystemSpec:
    """Stage 1: per-launch host overheads from rows whose kernels cost next to nothing.

    Bare tiny ops (``dispatch`` rows) give ``op_dispatch``; kernel-free runs of model
    architectures (``framework`` rows) give ``dispatch_overhead``, the per-launch time in
    model code. Each is the median of time / launches less ``kernel_latency``. Without
    such rows the base spec's values stay.
    """
    lat = base.device.kernel_latency.value
    spec = base.model_copy(deep=True)
    cls = type(spec.host.dispatch_overhead)

    def per_launch(fams: tuple[str, ...]) -> float | None:
        rs = [r for r in rows if r.family in fams and r.ops]
        if not rs:
            return None
        per = [r.measured_s / sum(f.launches for f in r.ops) - lat for r in rs]
        return max(float(np.median(per)), 1e-9)

    bare = per_launch(("dispatch",))
    framework = per_launch(("framework",))
    if bare is not None:
        spec.host.op_dispatch = cls(value=f"{bare:.9g} s", source="stage-1 fit")
        if framework is None:
            spec.host.dispatch_overhead = cls(value=f"{bare:.9g} s", source="stage-1 fit")
    if framework is not None:
        # kernel-free model steps: all but launches x kernel_latency is the framework's time
        spec.host.dispatch_overhead = cls(value=f"{framework:.9g} s", source="stage-1 fit")
    return spec


def mirror_predict(rows: list[RowFeatures], base: SystemSpec, result: FitResult) -> np.ndarray:
    """The mirror's prediction of ``rows`` with fitted parameters (for tests and diagnostics)."""
    mir = _Mirror(rows, base)
    th = mir.x0.copy()
    for g, (_, rates) in result.curves.items():
        if g in mir.slots:
            th[mir.slots[g]] = np.log(rates)
    for name, v in (("dispatch", result.dispatch_s), ("framework", result.framework_s),
                    ("update_rate", result.update_rate),
                    ("same_rate", result.same_address_rate), ("graph_node", result.graph_node_s),
                    ("link_bw", result.link_bw), ("link_lat", result.link_latency_s)):
        if name in mir.slots and v is not None:
            th[mir.slots[name]] = np.log(v)
    return mir.predict(th)
