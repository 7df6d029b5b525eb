"""Human units in hardware specs ("3.35 TB/s", "80 GiB", "4 us") to SI floats.

Decimal prefixes (KB, GB, TB) are powers of 1000 and binary ones (KiB, GiB) powers
of 1024, as datasheets use them: vendors quote HBM bandwidth in decimal TB/s and
capacity in binary GiB, and mixing them up is a 7% error.
"""

from __future__ import annotations

import re

_DEC = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}

#: dimension name -> regex of the unit part (after the number), and how to scale it
DIMENSIONS = ("bytes", "bandwidth", "time", "flop_rate", "frequency", "rate", "count", "ratio")

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_RE = re.compile(rf"^\s*{_NUM}\s*(.*?)\s*$")


class UnitError(ValueError):
    """A quantity whose text cannot be read as the dimension asked for."""


def _prefix(p: str) -> float | None:
    if p in _BIN:
        return _BIN[p]
    if p in _DEC:
        return _DEC[p]
    if p == "k":
        return 1e3
    return None


def _scale(unit: str, dimension: str) -> float | None:
    u = unit.strip()
    if dimension in ("count", "ratio"):
        if u == "":
            return 1.0
        if dimension == "ratio" and u == "%":
            return 0.01
        return None
    if dimension == "time":
        return _TIME.get(u)
    if dimension == "frequency":
        m = re.fullmatch(r"([kKMGT]?)Hz", u)
        return _prefix(m.group(1)) if m else None
    if dimension == "bytes":
        m = re.fullmatch(r"([kKMGTP]i?)?B", u)
        return _prefix(m.group(1) or "") if m else None
    if dimension == "bandwidth":
        m = re.fullmatch(r"([kKMGTP]i?)?B/s", u)
        return _prefix(m.group(1) or "") if m else None
    if dimension == "flop_rate":
        m = re.fullmatch(r"([kKMGTP]?)(?:FLOP/s|FLOPS|OP/s|OPS)", u)
        return _prefix(m.group(1)) if m else None
    if dimension == "rate":
        # events per second: "2.5 G/s", "400 M/s", "1e9 /s", "3 Gupdates/s"
        m = re.fullmatch(r"([kKMGT]?)(?:[A-Za-z_]*)/s", u)
        return _prefix(m.group(1)) if m else None
    raise UnitError(f"unknown dimension {dimension!r}")


_EXAMPLES = {
    "bytes": "'80 GiB', '50 MB'",
    "bandwidth": "'3.35 TB/s', '64 GB/s'",
    "time": "'4 us', '90 ns'",
    "flop_rate": "'989 TFLOP/s'",
    "frequency": "'1.98 GHz'",
    "rate": "'2.5 G/s' (events per second)",
    "count": "a plain number such as 132",
    "ratio": "a plain number such as 0.85 or '85%'",
}


def parse(text: str | float | int, dimension: str) -> float:
    """Parse ``text`` as a quantity of ``dimension`` and return it in SI base units."""
    if isinstance(text, bool):
        raise UnitError(f"expected {dimension}, got a boolean")
    if isinstance(text, (int, float)):
        if dimension in ("count", "ratio"):
            return float(text)
        raise UnitError(f"{text!r} has no unit; write it with a unit such as {_EXAMPLES[dimension]}")
    m = _RE.match(str(text))
    if not m:
        raise UnitError(f"cannot read {text!r} as {dimension}; write e.g. {_EXAMPLES[dimension]}")
    scale = _scale(m.group(2), dimension)
    if scale is None:
        raise UnitError(f"unit {m.group(2)!r} in {text!r} is not a {dimension} unit; write e.g. {_EXAMPLES[dimension]}")
    return float(m.group(1)) * scale


_FMT = {
    "bytes": [(2.0**40, "TiB"), (2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1, "B")],
    "bandwidth": [(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1e3, "KB/s"), (1, "B/s")],
    "time": [(1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")],
    "flop_rate": [(1e15, "PFLOP/s"), (1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1, "FLOP/s")],
    "frequency": [(1e9, "GHz"), (1e6, "MHz"), (1, "Hz")],
    "rate": [(1e12, "T/s"), (1e9, "G/s"), (1e6, "M/s"), (1, "/s")],
}


def fmt(value: float, dimension: str, digits: int = 3) -> str:
    """Format an SI value back into the human unit that reads best."""
    if dimension in ("count", "ratio") or value == 0:
        return f"{value:.{digits}g}"
    for scale, unit in _FMT[dimension]:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {unit}"
    scale, unit = _FMT[dimension][-1]
    return f"{value / scale:.{digits}g} {unit}"
