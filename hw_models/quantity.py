"""Hardware numbers that say who says so: a ``Quantity`` is a value in a unit dimension,
parsed from human units (``"3.35 TB/s"``), bounded to what is physically plausible and
carrying its ``source``; a ``Switch`` is a sourced yes/no; an ``EfficiencyCurve`` the
sourced fraction of peak reached at each work size. ``hw_models.spec`` builds systems
from them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import units


class Strict(BaseModel):
    """A spec model that refuses unknown keys (a misspelt field is an error, not a default)
    and validates assignments too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Quantity(Strict):
    """A number with a unit dimension and the source it came from.

    ``minimum``/``maximum`` bound what a value of this kind can physically be: a
    bandwidth of 0 B/s or a device count of 1e26 is a typo, and is refused at load with
    the field's name rather than dividing by zero later.
    """

    dimension: ClassVar[str] = "count"
    #: smallest allowed value, and whether the value must be strictly above it
    minimum: ClassVar[float] = 0.0
    strict_minimum: ClassVar[bool] = False
    maximum: ClassVar[float] = float("inf")
    value: float
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Quantity):
            return {"value": data.value, "source": data.source}
        if not isinstance(data, dict):
            raise ValueError(
                f"expected a mapping {{value: ..., source: ...}}, got {data!r} (every number needs a source)"
            )
        if "source" not in data:
            raise ValueError("missing 'source' (every hardware number must say where it came from)")
        out = dict(data)
        try:
            out["value"] = units.parse(data.get("value"), cls.dimension)
        except units.UnitError as e:
            raise ValueError(str(e)) from None
        return out

    @field_validator("value")
    @classmethod
    def _in_range(cls, v: float) -> float:
        if not np.isfinite(v) or v < cls.minimum or (cls.strict_minimum and v == cls.minimum):
            floor = f"> {cls.minimum:g}" if cls.strict_minimum else f">= {cls.minimum:g}"
            raise ValueError(f"must be a finite number {floor}, got {v:g}")
        if v > cls.maximum:
            raise ValueError(f"{units.fmt(v, cls.dimension)} is not plausible (at most {units.fmt(cls.maximum, cls.dimension)})")
        return v

    def __str__(self) -> str:
        return units.fmt(self.value, self.dimension)


class Bytes(Quantity):
    dimension: ClassVar[str] = "bytes"
    strict_minimum: ClassVar[bool] = True
    maximum: ClassVar[float] = 1e18  # an exabyte: no single memory or tier holds more


class Bandwidth(Quantity):
    dimension: ClassVar[str] = "bandwidth"
    strict_minimum: ClassVar[bool] = True
    maximum: ClassVar[float] = 1e16  # 10 PB/s: above any register file in existence


class Seconds(Quantity):
    dimension: ClassVar[str] = "time"
    maximum: ClassVar[float] = 1.0  # every latency and overhead in a spec is far under a second


class FlopRate(Quantity):
    dimension: ClassVar[str] = "flop_rate"
    strict_minimum: ClassVar[bool] = True
    maximum: ClassVar[float] = 1e19  # 10 EFLOP/s per device


class Rate(Quantity):
    dimension: ClassVar[str] = "rate"
    strict_minimum: ClassVar[bool] = True
    maximum: ClassVar[float] = 1e16


class Count(Quantity):
    dimension: ClassVar[str] = "count"
    minimum: ClassVar[float] = 1.0
    maximum: ClassVar[float] = 1e7


class Exponent(Quantity):
    """A dimensionless exponent >= 1 (see ``DeviceSpec.overlap``)."""

    dimension: ClassVar[str] = "count"
    minimum: ClassVar[float] = 1.0
    maximum: ClassVar[float] = 1e3


class Switch(Strict):
    """A yes/no property of the hardware, with the source that says so."""

    value: bool
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping {{value: true|false, source: ...}}, got {data!r}")
        if "source" not in data:
            raise ValueError("missing 'source' (every hardware property must say where it came from)")
        v = data.get("value")
        if not isinstance(v, bool):
            raise ValueError(f"value must be true or false, got {v!r}")
        return data

    def __bool__(self) -> bool:
        return self.value


class EfficiencyCurve(Strict):
    """Fraction of peak reached as a function of work size (bytes or FLOPs).

    ``points`` are (size, efficiency) pairs, interpolated linearly in log10(size) and
    held flat beyond the ends; ``value`` is shorthand for a flat curve. Kept as data
    (after Calculon) so calibration can rewrite it without touching code.
    """

    points: list[tuple[float, float]]
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "points" not in data:
            out = {k: v for k, v in data.items() if k != "value"}
            out["points"] = [(1.0, data["value"])]
            return out
        return data

    @field_validator("points")
    @classmethod
    def _check(cls, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not pts:
            raise ValueError("needs at least one (size, efficiency) point")
        pts = sorted((float(x), float(e)) for x, e in pts)
        for x, e in pts:
            if not (x > 0):
                raise ValueError(f"size {x} must be > 0")
            if not (0 < e <= 1.0):
                raise ValueError(f"efficiency {e} must be in (0, 1]")
        return pts

    def __call__(self, size: float | np.ndarray) -> float | np.ndarray:
        xs = np.log10([p[0] for p in self.points])
        es = np.array([p[1] for p in self.points])
        x = np.log10(np.maximum(np.asarray(size, dtype=float), 1.0))
        out = np.interp(x, xs, es)
        return float(out) if np.ndim(out) == 0 else out


def flat(value: float, source: str) -> EfficiencyCurve:
    return EfficiencyCurve(points=[(1.0, value)], source=source)
