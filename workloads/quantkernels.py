"""Quantised kernel families, read from ``quant_kernels.yaml`` (data, not code branches).

``family(name)`` returns one ``Family``: the formats it runs, the bytes its scales and
zeros add, where it dequantises, which unit multiplies, and its efficiencies, each
number with its ``source``. ``workloads.quantize`` rewrites a step's matrix ops by a
family; ``simulator.params`` reads its efficiencies as cost-model parameters.
``choose(precision, device_kind)`` picks and checks the family for a precision.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import WorkloadError
from .precision import FLOATS, Precision

FILE = Path(__file__).with_name("quant_kernels.yaml")


class KernelError(WorkloadError):
    """An unknown kernel family, or one that cannot run this precision or device (one line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Number(_Strict):
    """A number (``None`` where the field allows "none"/"the device's own") and its source."""

    value: float | None
    source: str = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not (v >= 0 and v < float("inf")):
            raise ValueError(f"must be a finite number >= 0, got {v}")
        return v


class Curve(_Strict):
    """Efficiency by size: ``points`` (size, fraction) interpolated in log10(size), held flat
    outside; ``value`` is a flat curve; ``None`` defers to the device's own curve."""

    value: float | None = None
    points: list[tuple[float, float]] | None = None
    source: str = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _points(cls, pts):
        if pts is None:
            return pts
        if not pts:
            raise ValueError("needs at least one (size, fraction) point")
        for x, e in pts:
            if not (x > 0 and 0 < e <= 1.0):
                raise ValueError(f"point ({x}, {e}): size must be > 0 and fraction in (0, 1]")
        return sorted(pts)

    @field_validator("value")
    @classmethod
    def _fraction(cls, v):
        if v is not None and not (0 < v <= 1.0):
            raise ValueError(f"fraction {v} must be in (0, 1]")
        return v

    @property
    def given(self) -> bool:
        return self.value is not None or self.points is not None

    def knots(self) -> list[tuple[float, float]]:
        """(size, fraction) knots; [] when the device's own curve applies."""
        if self.points is not None:
            return list(self.points)
        return [(1.0, float(self.value))] if self.value is not None else []


class Family(_Strict):
    name: str = ""
    description: str
    devices: list[Literal["gpu", "cpu"]] = Field(min_length=1)
    weights: list[str] = Field(min_length=1)
    activations: list[str] = Field(min_length=1)
    group: Number
    scale_bytes: Number
    zero_bytes: Number
    lm_head: Number
    fused_max_rows: Number
    dequant: Literal["registers", "none"]
    math: Literal["matrix", "vector"]
    #: the format the fused kernel multiplies in when it differs from the activations'
    math_dtype: str | None = None
    rows_per_pass: Number
    dequant_ops: Number
    compute_efficiency: Curve
    memory_efficiency: Curve
    dequant_kernel_ops: Number | None = None
    activation_quant_reads: Number

    def fused(self, rows: int) -> bool:
        """Whether an input of ``rows`` rows runs the fused kernel (else dequantise first)."""
        limit = self.fused_max_rows.value
        return limit is None or rows <= limit

    @property
    def quantizes_lm_head(self) -> bool:
        return bool(self.lm_head.value)


@functools.lru_cache(maxsize=1)
def families() -> dict[str, Family]:
    doc = yaml.safe_load(FILE.read_text(encoding="utf-8"))
    out = {}
    for name, body in doc["families"].items():
        try:
            out[name] = Family(name=name, **body)
        except ValidationError as e:  # a broken data file is a bug in the repository, said in one line
            err = e.errors()[0]
            raise ValueError(f"{FILE.name}: {name}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return out


def names() -> list[str]:
    return list(families())


def family(name: str) -> Family:
    f = families().get(name)
    if f is None:
        raise KernelError(f"--quant-kernel {name!r} unknown; known: {', '.join(families())}")
    return f


def default_family(p: Precision) -> str | None:
    """The family a precision runs when none is named: native 8-bit GEMMs for 8-bit
    activations, bitsandbytes for nf4 weights, the generic fused kernel otherwise."""
    if not p.quantized:
        return None
    if p.activations == "fp8":
        return "fp8-gemm"
    if p.activations == "int8":
        return "int8-gemm"
    if p.weights == "nf4":
        return "bnb-nf4"
    return "fused"


def runs(f: Family, p: Precision) -> bool:
    return p.weights in f.weights and p.activations in f.activations


def choose(p: Precision, device_kind: str | None = None) -> Family | None:
    """The family ``p`` runs (``p.kernel`` or the default), checked against the formats it
    takes and the device kind; ``None`` for an unquantised precision."""
    if not p.quantized:
        if p.kernel is not None:
            raise KernelError(f"--quant-kernel {p.kernel} needs quantised weights or activations, but precision "
                              f"{p} keeps them in {p.weights}; use e.g. --precision w4a16")
        return None
    name = p.kernel or default_family(p)
    f = family(name)
    if not runs(f, p):
        fits = [n for n, g in families().items() if runs(g, p)]
        raise KernelError(f"--quant-kernel {name} runs {'/'.join(f.weights)} weights with "
                          f"{'/'.join(f.activations)} activations, not precision {p} ({p.weights} weights, "
                          f"{p.activations} activations); kernels for it: {', '.join(fits) or 'none'}")
    if device_kind is not None and device_kind not in f.devices:
        fits = [n for n, g in families().items() if runs(g, p) and device_kind in g.devices]
        raise KernelError(f"--quant-kernel {name} runs on {'/'.join(f.devices)} devices, not on a {device_kind}; "
                          f"kernels for precision {p} there: {', '.join(fits) or 'none'}")
    return f


def math_dtype(f: Family, p: Precision) -> str:
    """The format the fused kernel's multiply-accumulates run in."""
    if f.math_dtype:
        return f.math_dtype
    return p.compute_dtype if p.compute_dtype not in FLOATS or f.dequant == "none" else p.float_dtype
