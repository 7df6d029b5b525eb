"""The cost model's parameters: every rate and overhead a step time depends on, by name.

``Params(system)`` reads them from a ``SystemSpec`` (peaks times efficiency curves,
link rates, host overheads); ``Params(system, overrides)`` replaces any of them, which
is how the calibration fit evaluates a candidate parameter vector. The cost model
(``simulator.costmodel``) and the engine read rates only through a ``Params``, so a
fitted number means the same thing in ``simulate`` and in the fit: there is one model.

Keys (``Params.keys_of`` lists a system's):

=================================  ==========================================  ========
key                                what                                        kind
=================================  ==========================================  ========
``level:<name>``                   a device memory level, by transfer bytes     curve B/s
``unit:<matrix|vector>.<dtype>``   a compute unit, by the op's FLOPs            curve FLOP/s
``unit:<...>@<kind key>``          the same unit for one op kind (``@softmax``)  curve FLOP/s
``unit:<...>@quant.<family>``      a fused quantised kernel of that family      curve FLOP/s
``unit:<vector.dt>@quant.ops``     (de)quantisation work beside the math        curve op/s
``level:<name>@quant.<family>``    the level as that kernel streams it          curve B/s
``tier:<name>``                    a far tier's memory                          curve B/s
``link:<tier>``                    a tier's link, per direction, by bytes       curve B/s
``link:interconnect``              the device fabric, by message bytes          curve B/s
``latency:<link key>``             per transfer / per collective step          seconds
``call_latency:link:interconnect``  fixed time of one collective call (graph)   seconds
``eager_call_latency:link:...``    the same, launched eagerly (launch skew)     seconds
``custom_latency:link:...``        a custom one-shot all-reduce's fixed time    seconds
``kernel_latency``                 device-side time of one kernel               seconds
``atomics.update_rate``            distinct-address atomic updates              /s
``atomics.same_address_rate``      same-address updates (serialised)            /s
``pim:<tier>.internal``            bank bandwidth of a PIM tier                 B/s
``pim:<tier>.peak``                PIM units' FLOP rate                         FLOP/s
``pim:<tier>.mode_switch``         per call                                     seconds
``overlap``                        p of the compute/memory p-norm               exponent
``host.dispatch``                  per launch, eager, inside model code         seconds
``host.op_dispatch``               per launch, a bare op in a loop              seconds
``host.library_call``              more per eager launch of a library kernel    seconds
``host.graph_launch``              one graph replay                             seconds
``host.graph_node``                per node of a replayed graph                 seconds
=================================  ==========================================  ========

The ``quant`` keys come from the kernel families (``workloads/quant_kernels.yaml``) unless
a spec fits them: ``unit:...@quant.<family>`` is the family's fraction of the unit's peak
(or, where the family gives none, the unit's own curve for the op); ``level:...@quant.
<family>`` is the level's curve times the family's memory efficiency; ``@quant.ops`` is the
unit's base curve. So a quantised kernel is priced by the same formula as every op.

A curve is a list of knots (log10 size) and a rate at each, linear in log10(size)
between them and flat outside; a spec's ``EfficiencyCurve`` is exactly that, scaled
by its peak. An override is a ``(log10 knots, rates)`` pair for a curve, a float for a
scalar.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hw_models import physics
from hw_models.spec import ComputeUnit, DeviceSpec, EfficiencyCurve, LinkSpec, SystemSpec

#: dtype whose vector unit serves any dtype the device lists no peak for
FALLBACK_DTYPE = "fp32"

#: scalar keys of every system
SCALARS = ("kernel_latency", "atomics.update_rate", "atomics.same_address_rate", "overlap", "host.dispatch",
           "host.op_dispatch", "host.library_call", "host.graph_launch", "host.graph_node")


class ParamError(KeyError):
    """A parameter the system does not have (a missing tier, level or unit); one line."""

    user_facing = True

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def unit_label(device: DeviceSpec, dtype: str, matrix: bool) -> str:
    """The compute unit that runs ``dtype`` math, as ``matrix.bf16`` / ``vector.fp32``.

    Fallback rule (documented, never zero): matrix ops use ``matrix[dtype]``, else
    ``vector[dtype]``; anything else uses ``vector[fp32]``, else the slowest unit listed
    (a conservative guess).
    """
    if matrix and dtype in device.matrix:
        return f"matrix.{dtype}"
    if dtype in device.vector:
        return f"vector.{dtype}"
    if FALLBACK_DTYPE in device.vector:
        return f"vector.{FALLBACK_DTYPE}"
    live = [(f"vector.{k}", v) for k, v in device.vector.items()] + [(f"matrix.{k}", v) for k, v in device.matrix.items()]
    return min(live, key=lambda kv: kv[1].peak.value)[0]


def compute_unit(device: DeviceSpec, label: str) -> ComputeUnit:
    table, _, dtype = label.partition(".")
    unit = (device.matrix if table == "matrix" else device.vector).get(dtype)
    if unit is None:
        raise ParamError(f"device {device.name!r} has no {table} unit for {dtype}")
    return unit


def _curve(peak: float, curve: EfficiencyCurve) -> tuple[np.ndarray, np.ndarray]:
    xs = np.log10([p[0] for p in curve.points])
    return xs, peak * np.array([p[1] for p in curve.points])


def _family_knots(kkey: str, which: str) -> list[tuple[float, float]]:
    """(size, fraction) knots of a quantised kernel family's compute or memory efficiency
    (``quant.<family>``); [] where the family defers to the device's own curve, or for
    ``quant.ops`` (dequantisation work, priced at the unit's base curve)."""
    if not kkey.startswith("quant.") or kkey == "quant.ops":
        return []
    from workloads.quantkernels import KernelError, family

    try:
        f = family(kkey.removeprefix("quant."))
    except KernelError as e:
        raise ParamError(str(e)) from None
    return (f.compute_efficiency if which == "compute" else f.memory_efficiency).knots()


def _times(xs: np.ndarray, rs: np.ndarray, knots: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """A curve multiplied by a (size, fraction) curve: both read linear in log10(size), flat outside."""
    if not knots:
        return xs, rs
    kx = np.log10([x for x, _ in knots])
    ke = np.array([e for _, e in knots])
    grid = np.union1d(xs, kx)
    return grid, np.interp(grid, xs, rs) * np.interp(grid, kx, ke)


class Params:
    """Rates and overheads of one device of ``system``, read from the spec or overridden."""

    __slots__ = ("system", "device", "overrides", "_curves", "_scalars")

    def __init__(self, system: SystemSpec, overrides: Mapping[str, object] | None = None) -> None:
        self.system = system
        self.device = system.device
        self.overrides = dict(overrides or {})
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._scalars: dict[str, float] = {}

    # -- curves -----------------------------------------------------------------------------
    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(log10 knots, rates) of a curve key."""
        c = self._curves.get(key)
        if c is None:
            o = self.overrides.get(key)
            if o is not None:
                xs, rs = o
                c = (np.asarray(xs, dtype=float), np.asarray(rs, dtype=float))
            else:
                c = self._spec_curve(key)
            self._curves[key] = c
        return c

    def rate(self, key: str, size):
        """The rate of curve ``key`` at ``size`` (bytes or FLOPs); links include their caps."""
        xs, rs = self.curve(key)
        r = physics.curve_rate(xs, rs, size)
        if key.startswith("link:"):
            link = self.link(key)
            if link.access == "cacheline":
                r = physics.cacheline_rate(r, link.outstanding_lines.value, link.granularity.value,
                                           self.scalar(f"latency:{key}"))
        return r

    def _spec_curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        kind, _, name = key.partition(":")
        dev = self.device
        if kind == "level":
            level, _, kkey = name.partition("@")
            try:
                lv = dev.level(level)
            except KeyError as e:
                raise ParamError(str(e.args[0])) from None
            xs, rs = _curve(lv.bandwidth.value, lv.efficiency)
            # a quantised kernel streams at its family's fraction of the dense rate
            return _times(xs, rs, _family_knots(kkey, "memory")) if kkey else (xs, rs)
        if kind == "unit":
            label, _, kkey = name.partition("@")
            unit = compute_unit(dev, label)
            curve = unit.kind_efficiency.get(kkey) if kkey else None
            if curve is None and kkey.startswith("quant."):
                knots = _family_knots(kkey, "compute")
                if knots:  # the family's own fraction of this unit's peak
                    return np.log10([x for x, _ in knots]), unit.peak.value * np.array([e for _, e in knots])
            return _curve(unit.peak.value, curve or unit.efficiency)
        if kind == "tier":
            t = self._tier(name)
            return np.array([0.0]), np.array([t.bandwidth.value])
        if kind == "link":
            link = self.link(key)
            return _curve(link.bandwidth.value, link.efficiency)
        if kind == "pim":  # the banks stream at one rate, whatever the size
            return np.array([0.0]), np.array([self.scalar(key)])
        raise ParamError(f"unknown parameter {key!r}")

    # -- scalars ----------------------------------------------------------------------------
    def scalar(self, key: str) -> float:
        v = self._scalars.get(key)
        if v is None:
            o = self.overrides.get(key)
            v = self._scalars[key] = float(o) if o is not None else self._spec_scalar(key)
        return v

    def _spec_scalar(self, key: str) -> float:
        dev, host = self.device, self.system.host
        if key == "kernel_latency":
            return dev.kernel_latency.value
        if key == "atomics.update_rate":
            return dev.atomics.update_rate.value
        if key == "atomics.same_address_rate":
            return dev.atomics.same_address_rate.value
        if key == "overlap":
            return dev.overlap.value
        if key == "host.dispatch":
            return host.dispatch_overhead.value
        if key == "host.op_dispatch":
            return (host.op_dispatch or host.dispatch_overhead).value
        if key == "host.library_call":
            return host.library_call.value
        if key == "host.graph_launch":
            return host.graph_launch.value
        if key == "host.graph_node":
            return host.graph_node_cost.value
        if key.startswith("latency:"):
            return self.link(key.removeprefix("latency:")).latency.value
        if key.startswith("call_latency:"):
            return self.link(key.removeprefix("call_latency:")).collective_latency.value
        if key.startswith("eager_call_latency:"):
            link = self.link(key.removeprefix("eager_call_latency:"))
            return (link.eager_collective_latency or link.collective_latency).value
        if key.startswith("custom_latency:"):
            link = self.link(key.removeprefix("custom_latency:"))
            if link.custom_allreduce_latency is None:
                raise ParamError(f"link {link.name!r} has no custom all-reduce")
            return link.custom_allreduce_latency.value
        if key.startswith("pim:"):
            tier, _, what = key[4:].rpartition(".")
            pim = self._tier(tier).pim
            if pim is None:
                raise ParamError(f"tier {tier!r} of system {self.system.id!r} has no PIM units")
            return {"internal": pim.internal_bandwidth, "peak": pim.peak, "mode_switch": pim.mode_switch}[what].value
        raise ParamError(f"unknown parameter {key!r}")

    # -- spec lookups -------------------------------------------------------------------------
    def _tier(self, name: str):
        try:
            return self.system.tier(name)
        except KeyError as e:
            raise ParamError(str(e.args[0])) from None

    def link(self, key: str) -> LinkSpec:
        """The ``LinkSpec`` behind ``link:<tier>`` or ``link:interconnect``."""
        name = key.removeprefix("link:")
        if name == "interconnect":
            if self.system.interconnect is None:
                raise ParamError(f"system {self.system.id!r} has no interconnect between its devices")
            return self.system.interconnect
        return self._tier(name).link

    # -- listing (the fit's parameter vector is a subset of these) --------------------------
    def keys_of(self) -> list[str]:
        dev, system = self.device, self.system
        keys = [f"level:{lv.name}" for lv in dev.memory]
        for table, units in (("matrix", dev.matrix), ("vector", dev.vector)):
            for dt, u in units.items():
                keys.append(f"unit:{table}.{dt}")
                keys += [f"unit:{table}.{dt}@{k}" for k in u.kind_efficiency]
        for t in system.tiers:
            keys += [f"tier:{t.name}", f"link:{t.name}", f"latency:link:{t.name}"]
            if t.pim is not None:
                keys += [f"pim:{t.name}.{w}" for w in ("internal", "peak", "mode_switch")]
        if system.interconnect is not None:
            keys += ["link:interconnect", "latency:link:interconnect", "call_latency:link:interconnect",
                     "eager_call_latency:link:interconnect"]
            if system.interconnect.custom_allreduce_latency is not None:
                keys.append("custom_latency:link:interconnect")
        return keys + list(SCALARS)

    def peak(self, key: str) -> float:
        """The datasheet ceiling of a curve key (its rate at efficiency 1)."""
        kind, _, name = key.partition(":")
        if kind == "level":
            return self.device.level(name.partition("@")[0]).bandwidth.value
        if kind == "unit":
            return compute_unit(self.device, name.partition("@")[0]).peak.value
        if kind == "tier":
            return self._tier(name).bandwidth.value
        if kind == "link":
            return self.link(key).bandwidth.value
        raise ParamError(f"{key!r} is not a curve")
