"""Write fitted parameters into a SystemSpec, and a SystemSpec back to catalog-style YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hw_models.spec import EfficiencyCurve, Quantity, SystemSpec

from .fit import FitResult

_UNIT = {"bytes": "B", "bandwidth": "B/s", "time": "s", "flop_rate": "FLOP/s", "frequency": "Hz", "rate": "/s"}


def _q(q: Quantity) -> dict[str, Any]:
    dim = type(q).dimension
    value: Any = q.value
    if dim in _UNIT:
        value = f"{q.value:.6g} {_UNIT[dim]}"
    elif float(value).is_integer():
        value = int(value)
    return {"value": value, "source": q.source}


def to_doc(obj: Any) -> Any:
    """A spec object as plain YAML data with units on every quantity (loadable by ``catalog.load``)."""
    if isinstance(obj, Quantity):
        return _q(obj)
    if isinstance(obj, EfficiencyCurve):
        return {"points": [[float(f"{x:.6g}"), float(f"{e:.4g}")] for x, e in obj.points], "source": obj.source}
    if isinstance(obj, BaseModel):
        out = {}
        for name in type(obj).model_fields:
            v = getattr(obj, name)
            if v is None or (name == "kind_efficiency" and not v):
                continue
            out[name] = to_doc(v)
        return out
    if isinstance(obj, dict):
        return {k: to_doc(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_doc(v) for v in obj]
    return obj


def write_yaml(spec: SystemSpec, path: str | Path, header: str = "") -> None:
    text = yaml.safe_dump(to_doc(spec), sort_keys=False, allow_unicode=True, width=200)
    Path(path).write_text((f"# {header}\n" if header else "") + text)


def _mk(cls: type[Quantity], value: float, source: str) -> Quantity:
    unit = _UNIT.get(cls.dimension)
    return cls(value=f"{value:.9g} {unit}" if unit else value, source=source)


def _curve(xs: list[float], rates: list[float], peak: float, source: str) -> tuple[float, EfficiencyCurve]:
    """(peak, curve): the peak is kept when it is at least the best fitted rate, else raised to it."""
    best = max(rates)
    peak = max(peak, best)
    # efficiencies are rounded to 4 digits when written: keep them above zero
    pts = [(10**x, max(min(r / peak, 1.0), 1e-4)) for x, r in zip(xs, rates, strict=True)]
    return peak, EfficiencyCurve(points=pts, source=source)


def _table_unit(dev, uname: str):
    ukind, dtype = uname.split(".", 1)
    return (dev.matrix if ukind == "matrix" else dev.vector).get(dtype)


def _raise_unit_peaks(dev, res: FitResult, source: str) -> None:
    """Raise each unit's peak to the best fitted rate of its generic and per-kind curves.

    Curves the fit leaves alone are rescaled so their effective rates do not change.
    """
    best: dict[str, float] = {}
    for group, (_, rates) in res.curves.items():
        kind, name = group.split(":", 1)
        if kind == "unit":
            u = name.partition("@")[0]
            best[u] = max(best.get(u, 0.0), max(rates))
    for uname, rate in best.items():
        cu = _table_unit(dev, uname)
        if cu is None or rate <= cu.peak.value:
            continue
        scale = cu.peak.value / rate

        def rescaled(c: EfficiencyCurve, scale: float = scale) -> EfficiencyCurve:
            return EfficiencyCurve(points=[(x, max(e * scale, 1e-4)) for x, e in c.points], source=c.source)

        cu.efficiency = rescaled(cu.efficiency)
        cu.kind_efficiency = {k: rescaled(c) for k, c in cu.kind_efficiency.items()}
        cu.peak = _mk(type(cu.peak), rate, source=f"{source} (best effective rate; above the estimate)")


def apply_fit(base: SystemSpec, res: FitResult, source: str) -> tuple[SystemSpec, list[str]]:
    """A copy of ``base`` with every fitted number replaced and sourced; returns it and notes."""
    spec = base.model_copy(deep=True)
    dev = spec.device
    notes: list[str] = [f"{g}: no training row depends on it (overhead or another term dominates); "
                        "kept the base spec's value" for g in res.unidentified]
    _raise_unit_peaks(dev, res, source)
    for group, (xs, rates) in res.curves.items():
        kind, name = group.split(":", 1)
        n = res.rows_per_group.get(group, 0)
        src = f"{source}; bound {n} training op(s)"
        if kind == "level":
            lv = dev.level(name)
            peak, curve = _curve(xs, rates, lv.bandwidth.value, src)
            if peak > lv.bandwidth.value:
                lv.bandwidth = _mk(type(lv.bandwidth), peak, f"{source} (best effective rate)")
            lv.efficiency = curve
        else:
            uname, _, key = name.partition("@")
            cu = _table_unit(dev, uname)
            if cu is None:
                notes.append(f"unit {uname} fitted but absent from the base spec; skipped")
                continue
            # peaks were raised to the best rate of any of the unit's groups beforehand
            _peak, curve = _curve(xs, rates, cu.peak.value, src)
            if key:
                cu.kind_efficiency = {**cu.kind_efficiency, key: curve}
            else:
                cu.efficiency = curve
    host = spec.host
    held = f"kernel_latency ({res.kernel_latency_s:.3g} s) held at its estimate"
    if res.dispatch_s is not None:
        host.op_dispatch = _mk(type(host.dispatch_overhead), res.dispatch_s,
                               f"{source}; bare torch ops in a loop, per launch, {held}")
        if res.framework_s is None:
            host.dispatch_overhead = _mk(type(host.dispatch_overhead), res.dispatch_s,
                                         f"{source}; bare torch ops (no model-code rows), {held}")
    if res.framework_s is not None:
        host.dispatch_overhead = _mk(
            type(host.dispatch_overhead), res.framework_s,
            f"{source}; per launch in kernel-free runs of the model architectures (framework rows), {held}")
    if res.update_rate is not None:
        dev.atomics.update_rate = _mk(type(dev.atomics.update_rate), res.update_rate, source=source)
    if res.same_address_rate is not None:
        dev.atomics.same_address_rate = _mk(type(dev.atomics.same_address_rate), res.same_address_rate, source=source)
    if res.graph_node_s is not None:
        host.graph_node_cost = _mk(type(host.graph_node_cost), res.graph_node_s, source=source)
    if res.link_bw is not None and spec.tiers:
        link = spec.tiers[0].link
        if res.link_bw > link.bandwidth.value:
            link.bandwidth = _mk(type(link.bandwidth), res.link_bw, f"{source} (best effective rate)")
        link.efficiency = _mk(type(link.efficiency), min(res.link_bw / link.bandwidth.value, 1.0), source=source)
        if res.link_latency_s is not None:
            link.latency = _mk(type(link.latency), res.link_latency_s, source=source)
    if dev.kind == "cpu":
        main = dev.main_memory
        bw = main.bandwidth.value * max(e for _, e in main.efficiency.points)
        host.memory_bandwidth = _mk(type(host.memory_bandwidth), bw, source=f"{source} (device main memory, best)")
    return spec, notes
