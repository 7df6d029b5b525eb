"""What-if edits of hardware specs: ``--set`` one field, ``--scale`` a whole group.

``--set HW.PATH=VALUE``: ``HW`` is a hardware id of the run; ``PATH`` starts with a
device memory level name (``hbm.bandwidth``), a tier name (``host.link.bandwidth``), or
a field of the system (``host.dispatch_overhead``, ``device.matrix.bf16.peak``,
``interconnect.bandwidth``, ``num_devices``). A number-with-unit field takes the value
in its own unit ("4.8TB/s", "141GB", "2us") and is validated by the spec's pydantic
model; its source becomes ``what-if: --set ...``.

``--scale KEY=FACTOR,...`` multiplies, in every system of the run:

- ``bandwidth``: every device memory level, every tier, every link (tier links and the
  device interconnect), and the PIM internal bandwidth;
- ``compute``: every matrix and vector peak (all dtypes) and the PIM peak;
- ``dispatch``: the host's eager dispatch overhead, graph launch and per-node cost;
- ``latency``: the device kernel latency and every memory, tier and link latency.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from hw_models.quantity import Quantity
from hw_models.spec import SystemSpec
from roofsim.errors import UserError

SCALE_KEYS = ("bandwidth", "compute", "dispatch", "latency")


def _scaled(q: Quantity, factor: float, why: str) -> Quantity:
    # model_construct: the value is already SI; re-parsing a bare float would demand a unit
    return type(q).model_construct(value=q.value * factor, source=f"{why} (was {q}: {q.source})")


def _scale_field(model: BaseModel, name: str, factor: float, why: str) -> None:
    q = getattr(model, name, None)
    if isinstance(q, Quantity):
        setattr(model, name, _scaled(q, factor, why))


def _links(system: SystemSpec) -> Iterator[BaseModel]:
    if system.interconnect is not None:
        yield system.interconnect
    for t in system.tiers:
        yield t.link


def _targets(system: SystemSpec, key: str) -> Iterator[tuple[BaseModel, str]]:
    dev, host = system.device, system.host
    if key == "bandwidth":
        yield from ((lv, "bandwidth") for lv in dev.memory)
        yield from ((t, "bandwidth") for t in system.tiers)
        yield from ((lk, "bandwidth") for lk in _links(system))
        yield from ((t.pim, "internal_bandwidth") for t in system.tiers if t.pim is not None)
        yield (host, "memory_bandwidth")
    elif key == "compute":
        for units in (dev.matrix, dev.vector):
            yield from ((cu, "peak") for cu in units.values())
        yield from ((t.pim, "peak") for t in system.tiers if t.pim is not None)
    elif key == "dispatch":
        yield from ((host, f) for f in ("dispatch_overhead", "graph_launch", "graph_node_cost"))
    elif key == "latency":
        yield (dev, "kernel_latency")
        yield from ((lv, "latency") for lv in dev.memory)
        yield from ((t, "latency") for t in system.tiers)
        yield from ((lk, "latency") for lk in _links(system))
        yield (host, "memory_latency")


def parse_scale(text: str | Iterable[str] | dict[str, float] | None) -> dict[str, float]:
    """``"bandwidth=1.5,compute=2"`` (or several such strings, or a dict) -> {key: factor}."""
    if not text:
        return {}
    if isinstance(text, dict):
        items = list(text.items())
    else:
        parts = [text] if isinstance(text, str) else list(text)
        items = []
        for part in parts:
            for kv in filter(None, (s.strip() for s in part.split(","))):
                if "=" not in kv:
                    raise UserError(
                        f"--scale {kv!r}: expected KEY=FACTOR with KEY one of {', '.join(SCALE_KEYS)}"
                    )
                k, v = kv.split("=", 1)
                items.append((k.strip(), v.strip()))
    out: dict[str, float] = {}
    for k, v in items:
        if k not in SCALE_KEYS:
            raise UserError(f"--scale: unknown key {k!r}; allowed: {', '.join(SCALE_KEYS)}")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise UserError(f"--scale {k}={v}: factor must be a number") from None
        if not f > 0 or f == float("inf"):
            raise UserError(f"--scale {k}={v}: factor must be a positive finite number")
        out[k] = f
    return out


def apply_scale(system: SystemSpec, scale: dict[str, float]) -> SystemSpec:
    """A copy of ``system`` with every field of each group multiplied by its factor."""
    if not scale:
        return system
    out = system.model_copy(deep=True)
    for key, factor in scale.items():
        if key not in SCALE_KEYS:
            raise UserError(f"--scale: unknown key {key!r}; allowed: {', '.join(SCALE_KEYS)}")
        why = f"what-if: --scale {key}={factor:g}"
        for model, name in _targets(out, key):
            _scale_field(model, name, factor, why)
    return out


def parse_set(text: str) -> tuple[str, list[str], str]:
    """``"h100-sxm.hbm.bandwidth=4.8TB/s"`` -> ("h100-sxm", ["hbm", "bandwidth"], "4.8TB/s").

    The hardware id may itself hold dots (a YAML path); it is matched later against the
    run's ids, so here everything before ``=`` is kept as one dotted string in [0].
    """
    if "=" not in text:
        raise UserError(
            f"--set {text!r}: expected HARDWARE.FIELD.PATH=VALUE, e.g. h100-sxm.hbm.bandwidth=4.8TB/s"
        )
    path, value = text.split("=", 1)
    path, value = path.strip(), value.strip()
    if not value:
        raise UserError(f"--set {text!r}: empty value")
    return path, [], value


def _split_hardware(path: str, hardware: list[str]) -> tuple[str, list[str]]:
    for hw in sorted(hardware, key=len, reverse=True):
        if path.startswith(hw + "."):
            return hw, path[len(hw) + 1 :].split(".")
    head = path.split(".", 1)[0]
    raise UserError(
        f"--set {path}: {head!r} is not a hardware of this run; the run has: {', '.join(hardware)}"
    )


def _fields(model: BaseModel) -> list[str]:
    return list(type(model).model_fields)


def _starts(system: SystemSpec, first: str) -> list[tuple[Any, str]]:
    """What a --set path's first component may name, in order of precedence."""
    found: list[tuple[Any, str]] = [
        (lv, f"memory level {first}") for lv in system.device.memory if lv.name == first
    ]
    found += [(t, f"tier {first}") for t in system.tiers if t.name == first]
    if first in _fields(system):
        # "host" is both a tier (host DRAM) and the host CPU: the path's next part decides
        found.append((system, "system"))
    if not found:
        levels = [lv.name for lv in system.device.memory]
        raise UserError(
            f"--set {system.id}.{first}: unknown field {first!r}; allowed: memory levels {', '.join(levels)}"
            f"; tiers {', '.join(system.tier_names) or '(none)'}; system fields {', '.join(_fields(system))}"
        )
    return found


def _walk(obj: Any, rest: list[str], label: str) -> tuple[Any, str, Any]:
    """(parent, field name, current value) at the end of ``rest``."""
    parent, name = obj, rest[0]
    for i, comp in enumerate(rest):
        parent, name = obj, comp
        if isinstance(obj, dict):
            if comp not in obj:
                raise UserError(f"--set {label}: unknown field {comp!r}; allowed: {', '.join(obj)}")
            obj = obj[comp]
        elif isinstance(obj, BaseModel) and not isinstance(obj, Quantity):
            if comp not in _fields(obj):
                raise UserError(f"--set {label}: unknown field {comp!r}; allowed: {', '.join(_fields(obj))}")
            obj = getattr(obj, comp)
        else:
            raise UserError(f"--set {label}: {'.'.join(rest[:i])} is a value and has no field {comp!r}")
    if isinstance(obj, dict) or (isinstance(obj, BaseModel) and not isinstance(obj, Quantity)):
        allowed = list(obj) if isinstance(obj, dict) else _fields(obj)
        raise UserError(
            f"--set {label}: {'.'.join(rest)} is not a value; allowed fields: {', '.join(allowed)}"
        )
    if isinstance(parent, dict):
        raise UserError(f"--set {label}: {name} is not a value; set one of its fields")
    return parent, name, obj


def apply_set(system: SystemSpec, path: list[str], value: str, label: str) -> SystemSpec:
    """A copy of ``system`` with the field at ``path`` (after the hardware id) set to ``value``."""
    out = system.model_copy(deep=True)
    first_error: UserError | None = None
    for obj, where in _starts(out, path[0]):
        rest = path if obj is out else path[1:]
        if not rest:
            first_error = first_error or UserError(
                f"--set {label}: {where} is not a value; allowed fields: {', '.join(_fields(obj))}"
            )
            continue
        try:
            parent, name, current = _walk(obj, rest, label)
        except UserError as e:
            first_error = first_error or e
            continue
        new: Any = (
            {"value": value, "source": f"what-if: --set {label}"} if isinstance(current, Quantity) else value
        )
        try:
            setattr(parent, name, new)
        except ValidationError as e:
            raise UserError(f"--set {label}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        return out
    assert first_error is not None
    raise first_error


def apply_whatif(
    systems: dict[str, SystemSpec], sets: Iterable[str] = (), scale: dict[str, float] | None = None
) -> dict[str, SystemSpec]:
    """Every ``--set`` (in order) on its hardware, then ``--scale`` on every system."""
    out = dict(systems)
    for text in sets or ():
        path, _, value = parse_set(text)
        hw, comps = _split_hardware(path, list(out))
        out[hw] = apply_set(out[hw], comps, value, f"{path}={value}")
    if scale:
        out = {hw: apply_scale(s, scale) for hw, s in out.items()}
    return out
