"""Can a system run a step's precision? fp8 or int8 activations need matrix units of that
format (fp8 tensor cores: Hopper, Ada, Blackwell, CDNA 3), and a kernel family runs only
on the device kinds it lists. Checked before pricing, so an impossible step is one line
naming the value and what the system allows, never a silent fallback to another unit."""

from __future__ import annotations

from hw_models.spec import SystemSpec
from workloads.precision import ALLOWED, FLOATS, Precision, parse
from workloads.quantkernels import choose


class PrecisionError(ValueError):
    """A precision the hardware cannot run (user-facing, one line)."""

    user_facing = True


def check(system: SystemSpec, precision: str | Precision | dict | None) -> Precision | None:
    """Raise ``PrecisionError`` (or the family's ``KernelError``) unless ``system`` runs it."""
    if precision is None:
        return None
    p = Precision(**precision) if isinstance(precision, dict) else parse(precision)
    dev = system.device
    if p.activations not in FLOATS and p.activations not in dev.matrix:
        allowed = [a for a in ALLOWED["activations"] if a in FLOATS or a in dev.matrix]
        hint = f" (or {p.activations} weights alone: --weights {p.weights} --activations bf16)" \
            if p.weights == p.activations else ""
        raise PrecisionError(f"--activations {p.activations} needs {p.activations} matrix units, which {system.id} "
                             f"does not have; activations allowed there: {', '.join(allowed)}{hint}")
    choose(p, dev.kind)
    return p


def check_graph(system: SystemSpec, graph) -> None:
    """``check`` for the precision a built graph records (``meta["precision"]``), if any."""
    meta = getattr(graph, "meta", None)
    if isinstance(meta, dict) and meta.get("precision"):
        check(system, meta["precision"])
