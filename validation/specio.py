"""Write fitted parameters into a SystemSpec, and a SystemSpec back to catalog-style YAML.

Every parameter key of ``simulator.params`` has one home in the spec: a curve becomes an
``EfficiencyCurve`` of the same peak (the peak itself is never rewritten: the fit is
bounded by it), a scalar becomes its field. Each rewritten number's ``source`` names the
dataset and the fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hw_models.quantity import EfficiencyCurve, Quantity
from hw_models.spec import SystemSpec
from simulator.params import compute_unit

from .fit import FitResult

_UNIT = {"bytes": "B", "bandwidth": "B/s", "time": "s", "flop_rate": "FLOP/s", "rate": "/s"}


def _q(q: Quantity) -> dict[str, Any]:
    dim = type(q).dimension
    value: Any = q.value
    if dim in _UNIT:
        value = f"{q.value:.9g} {_UNIT[dim]}"
    elif float(value).is_integer():
        value = int(value)
    return {"value": value, "source": q.source}


def to_doc(obj: Any) -> Any:
    """A spec object as plain YAML data with units on every quantity (loadable by ``catalog.load``)."""
    if isinstance(obj, Quantity):
        return _q(obj)
    if isinstance(obj, EfficiencyCurve):
        # 12 digits: a fitted curve read back at its knots must give the fit's own numbers
        return {"points": [[float(f"{x:.12g}"), float(f"{e:.12g}")] for x, e in obj.points], "source": obj.source}
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


def _is_number(d: Any) -> bool:
    return isinstance(d, dict) and ("value" in d or "points" in d)


def delta(doc: Any, base: Any) -> Any:
    """The parts of spec document ``doc`` that differ from ``base``, shaped for a ``base:``
    what-if file (``hw_models.catalog``): mappings merge key by key, so only changed keys
    are kept; numbers (value/points mappings) and lists are replaced whole."""
    if isinstance(doc, dict) and isinstance(base, dict) and not _is_number(doc):
        out = {}
        for k, v in doc.items():
            if k not in base:
                out[k] = v
                continue
            d = delta(v, base[k])
            if d is not _SAME:
                out[k] = d
        return out if out else _SAME
    return _SAME if doc == base else doc


_SAME = object()


def write_derived_yaml(spec: SystemSpec, base: SystemSpec, base_id: str, path: str | Path, header: str = "") -> None:
    """``spec`` as a catalog what-if file: ``base: <base_id>`` plus what it changes."""
    d = delta(to_doc(spec), to_doc(base))
    d = {} if d is _SAME else d
    doc = {"base": base_id, **{k: d.pop(k) for k in ("id", "name", "description") if k in d}, **d}
    d.pop("tiers", None)  # tiers are rebuilt from the base's host_link and attach lists
    doc.pop("tiers", None)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200, default_flow_style=None)
    Path(path).write_text((f"# {header}\n" if header else "") + text)


def _mk(q: Quantity, value: float, source: str) -> Quantity:
    unit = _UNIT.get(type(q).dimension)
    return type(q)(value=f"{value:.9g} {unit}" if unit else value, source=source)


def _curve(knots: list[float], rates: list[float], peak: float, source: str) -> EfficiencyCurve:
    """The fit's curve (its knots, continued by the base's shape: ``Objective._extend``)."""
    # rates are bounded by the peak in the fit; the clamp only guards float round-off
    pts = [(10.0 ** x, min(max(r / peak, 1e-9), 1.0)) for x, r in zip(knots, rates, strict=True)]
    return EfficiencyCurve(points=pts, source=source)


def apply_fit(base: SystemSpec, res: FitResult, source: str) -> tuple[SystemSpec, list[str]]:
    """A copy of ``base`` with every fitted number replaced and sourced; returns it and notes."""
    spec = base.model_copy(deep=True)
    dev, host = spec.device, spec.host
    notes = list(res.notes)
    # the per-kind curves the fit priced with are exactly the ones the spec keeps
    for table in (dev.matrix, dev.vector):
        for dt, unit in table.items():
            label = f"{'matrix' if table is dev.matrix else 'vector'}.{dt}"
            keep = res.kind_curves.get(label, frozenset())
            unit.kind_efficiency = {k: c for k, c in unit.kind_efficiency.items() if k in keep}
    for key, v in res.values.items():
        src = f"{source}; {res.rows_behind(key)} training rows depend on it"
        kind, _, name = key.partition(":")
        if isinstance(v, tuple):
            knots, rates = v
            if kind == "level":
                lv = dev.level(name)
                lv.efficiency = _curve(knots, rates, lv.bandwidth.value, src)
            elif kind == "unit":
                label, _, kkey = name.partition("@")
                unit = compute_unit(dev, label)
                curve = _curve(knots, rates, unit.peak.value, src)
                if kkey:
                    unit.kind_efficiency = {**unit.kind_efficiency, kkey: curve}
                else:
                    unit.efficiency = curve
            elif kind == "link":
                link = spec.interconnect if name == "interconnect" else spec.tier(name).link
                link.efficiency = _curve(knots, rates, link.bandwidth.value, src)
            else:
                notes.append(f"{key}: fitted but has no home in the spec; not written")
            continue
        if key.split(":", 1)[0] in ("call_latency", "eager_call_latency", "custom_latency"):
            head, _, name = key.partition(":link:")
            link = spec.interconnect if name == "interconnect" else spec.tier(name).link
            field = {"call_latency": "collective_latency", "eager_call_latency": "eager_collective_latency",
                     "custom_latency": "custom_allreduce_latency"}[head]
            setattr(link, field, _mk(link.latency, v, src))
        elif key.startswith("latency:link:"):
            name = key.removeprefix("latency:link:")
            link = spec.interconnect if name == "interconnect" else spec.tier(name).link
            link.latency = _mk(link.latency, v, src)
        elif key == "kernel_latency":
            dev.kernel_latency = _mk(dev.kernel_latency, v, src)
        elif key == "overlap":
            dev.overlap = _mk(dev.overlap, v, src)
        elif key == "atomics.update_rate":
            dev.atomics.update_rate = _mk(dev.atomics.update_rate, v, src)
        elif key == "atomics.same_address_rate":
            dev.atomics.same_address_rate = _mk(dev.atomics.same_address_rate, v, src)
        elif key == "host.dispatch":
            host.dispatch_overhead = _mk(host.dispatch_overhead, v, f"{src} (per launch inside model code)")
        elif key == "host.op_dispatch":
            host.op_dispatch = _mk(host.dispatch_overhead, v, f"{src} (per launch of a bare op in a loop)")
        elif key == "host.library_call":
            host.library_call = _mk(host.library_call, v, f"{src} (more per launch of a library kernel)")
        elif key == "host.graph_launch":
            host.graph_launch = _mk(host.graph_launch, v, src)
        elif key == "host.graph_node":
            host.graph_node_cost = _mk(host.graph_node_cost, v, src)
        elif kind == "pim":
            tier, _, what = name.rpartition(".")
            pim = spec.tier(tier).pim
            field = {"internal": "internal_bandwidth", "peak": "peak", "mode_switch": "mode_switch"}[what]
            setattr(pim, field, _mk(getattr(pim, field), v, src))
        else:
            notes.append(f"{key}: fitted but has no home in the spec; not written")
    return spec, notes
