"""Request traffic: when requests arrive and how long their prompts and outputs are.

Arrival processes (``Arrivals``): ``poisson`` (exponential gaps at ``qps``), ``gamma``
(gamma gaps of mean ``1/qps`` and coefficient of variation ``cv``: ``cv > 1`` is
burstier than Poisson, ``cv = 1`` is Poisson, ``cv < 1`` smoother), ``constant`` (gaps of
exactly ``1/qps``), and a trace file (CSV or JSONL with ``arrival_s``, ``prompt_tokens``,
``output_tokens`` per request; ``read_trace``).

Length distributions (``Lengths``, parsed from text by ``parse_lengths``): ``512`` or
``fixed:512``; ``uniform:LO:HI`` (whole numbers, both ends included); ``lognormal:MEDIAN:SIGMA[:MAX]``
(``exp(N(ln MEDIAN, SIGMA))`` rounded, at least 1, at most MAX); ``file:PATH[:COLUMN]`` (draws with
replacement from a column of a CSV, or from one number per line). ``max`` caps a draw.

Everything draws from one ``numpy.random.Generator`` seeded by the caller: the same seed
gives the same requests.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class TrafficError(ValueError):
    """Bad traffic description (one line naming the field)."""

    user_facing = True


ARRIVALS = ("poisson", "gamma", "constant")


@dataclass(frozen=True)
class Arrivals:
    kind: str = "poisson"
    qps: float = 1.0
    cv: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ARRIVALS:
            raise TrafficError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {self.kind!r}")
        if not (isinstance(self.qps, (int, float)) and math.isfinite(self.qps) and self.qps > 0):
            raise TrafficError(f"--qps must be a number > 0, got {self.qps!r}")
        if not (math.isfinite(self.cv) and self.cv > 0):
            raise TrafficError(f"--cv must be a number > 0, got {self.cv!r}")

    def gaps(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mean = 1.0 / self.qps
        if self.kind == "constant":
            return np.full(n, mean)
        if self.kind == "poisson" or (self.kind == "gamma" and self.cv == 1.0):
            return rng.exponential(mean, n)
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, mean / shape, n)

    def times(self, rng: np.random.Generator, *, n: int | None = None, duration: float | None = None) -> np.ndarray:
        """Arrival times of ``n`` requests, or of every request before ``duration`` seconds.
        The first request arrives after one gap (a process started at time 0)."""
        if n is not None:
            return np.cumsum(self.gaps(int(n), rng))
        assert duration is not None
        out = []
        t = 0.0
        chunk = max(16, int(duration * self.qps * 1.2) + 16)
        while True:
            g = np.cumsum(self.gaps(chunk, rng)) + t
            keep = g[g < duration]
            out.append(keep)
            if len(keep) < len(g):
                break
            t = float(g[-1])
        return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class Lengths:
    kind: str = "fixed"
    a: float = 512
    b: float = 0
    values: tuple[int, ...] = ()
    text: str = ""
    max: int | None = None

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "fixed":
            x = np.full(n, int(self.a), dtype=np.int64)
        elif self.kind == "uniform":
            x = rng.integers(int(self.a), int(self.b) + 1, n)
        elif self.kind == "lognormal":
            x = np.maximum(1, np.rint(np.exp(rng.normal(math.log(self.a), self.b, n)))).astype(np.int64)
        else:
            x = rng.choice(np.asarray(self.values, dtype=np.int64), n, replace=True)
        if self.max is not None:
            x = np.minimum(x, self.max)
        return x.astype(np.int64)

    @property
    def mean(self) -> float:
        if self.kind == "fixed":
            v = float(self.a)
        elif self.kind == "uniform":
            v = (self.a + self.b) / 2.0
        elif self.kind == "lognormal":
            v = self.a * math.exp(self.b**2 / 2.0)
        else:
            v = float(np.mean(self.values))
        return min(v, self.max) if self.max is not None else v


def _whole(text: str, field: str, minimum: int = 1) -> int:
    try:
        v = float(text)
    except ValueError:
        raise TrafficError(f"{field}: {text!r} is not a number") from None
    if not math.isfinite(v) or v != int(v) or v < minimum:
        raise TrafficError(f"{field}: {text!r} must be a whole number >= {minimum}")
    return int(v)


def parse_lengths(text: str | int, field: str = "--prompt-len") -> Lengths:
    """``512``, ``fixed:512``, ``uniform:LO:HI``, ``lognormal:MEDIAN:SIGMA``, ``file:PATH[:COLUMN]``."""
    if isinstance(text, (int, np.integer)):
        return Lengths("fixed", _whole(str(text), field), text=str(text))
    s = str(text).strip()
    head, _, rest = s.partition(":")
    if not rest:
        return Lengths("fixed", _whole(head, field), text=s)
    if head == "fixed":
        return Lengths("fixed", _whole(rest, field), text=s)
    if head == "uniform":
        parts = rest.split(":")
        if len(parts) != 2:
            raise TrafficError(f"{field}: write uniform:LO:HI, got {s!r}")
        lo, hi = _whole(parts[0], field), _whole(parts[1], field)
        if hi < lo:
            raise TrafficError(f"{field}: uniform:{lo}:{hi} has HI below LO")
        return Lengths("uniform", lo, hi, text=s)
    if head == "lognormal":
        parts = rest.split(":")
        if len(parts) not in (2, 3):
            raise TrafficError(f"{field}: write lognormal:MEDIAN:SIGMA[:MAX], got {s!r}")
        cap = _whole(parts[2], field) if len(parts) == 3 else None
        med = _whole(parts[0], field)
        try:
            sig = float(parts[1])
        except ValueError:
            raise TrafficError(f"{field}: sigma {parts[1]!r} is not a number") from None
        if not (math.isfinite(sig) and 0 <= sig <= 5):
            raise TrafficError(f"{field}: sigma must be in 0..5, got {parts[1]!r}")
        if cap is not None and cap < med:
            raise TrafficError(f"{field}: MAX {cap} is below the median {med}")
        return Lengths("lognormal", med, sig, text=s, max=cap)
    if head == "file":
        path, _, col = rest.partition(":") if not Path(rest).exists() else (rest, "", "")
        vals = _read_column(Path(path), col or None, field)
        return Lengths("empirical", values=tuple(vals), text=s)
    raise TrafficError(f"{field}: unknown length distribution {head!r}; use N, fixed:N, uniform:LO:HI, "
                       "lognormal:MEDIAN:SIGMA or file:PATH[:COLUMN]")


def _lines(path: Path, field: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file; a missing or unreadable one is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrafficError(f"{field}: file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrafficError(f"{field}: cannot read {str(path)!r}: {e}") from None
    return [ln for ln in text.splitlines() if ln.strip()]


def _read_column(path: Path, column: str | None, field: str) -> list[int]:
    lines = _lines(path, field)
    if not lines:
        raise TrafficError(f"{field}: {str(path)!r} is empty")
    vals: list[int] = []
    if column is not None or "," in lines[0]:
        rows = list(csv.DictReader(lines))
        if not rows:
            raise TrafficError(f"{field}: {str(path)!r} has a header and no rows")
        col = column or next(iter(rows[0]))
        if col not in rows[0]:
            raise TrafficError(f"{field}: {str(path)!r} has no column {col!r}; it has {', '.join(rows[0])}")
        for i, r in enumerate(rows, 2):
            vals.append(_whole(str(r[col]).strip(), f"{field} ({path.name} line {i})"))
    else:
        for i, ln in enumerate(lines, 1):
            vals.append(_whole(ln.strip(), f"{field} ({path.name} line {i})"))
    return vals


TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival times, prompt tokens, output tokens) from a CSV or JSONL trace, sorted by
    arrival. Columns: ``arrival_s`` (seconds from the start), ``prompt_tokens``,
    ``output_tokens``."""
    p = Path(path)
    rows: list[dict] = []
    lines = _lines(p, "--trace")
    if not lines:
        raise TrafficError(f"--trace: {str(p)!r} has no requests")
    if p.suffix in (".jsonl", ".json") or lines[0].lstrip().startswith("{"):
        for i, ln in enumerate(lines, 1):
            try:
                r = json.loads(ln)
            except json.JSONDecodeError as e:
                raise TrafficError(f"--trace: {p.name} line {i}: not JSON ({e.msg})") from None
            if not isinstance(r, dict):
                raise TrafficError(f"--trace: {p.name} line {i}: expected an object with {', '.join(TRACE_COLUMNS)}")
            rows.append(r)
        where = lambda i: f"{p.name} line {i}"  # noqa: E731
    else:
        rows = list(csv.DictReader(lines))
        where = lambda i: f"{p.name} line {i + 1}"  # noqa: E731
    if not rows:
        raise TrafficError(f"--trace: {str(p)!r} has no requests")
    arr, pr, out = [], [], []
    for i, r in enumerate(rows, 1):
        for c in TRACE_COLUMNS:
            if c not in r or r[c] in (None, ""):
                raise TrafficError(f"--trace: {where(i)}: missing {c} (columns: {', '.join(TRACE_COLUMNS)})")
        try:
            t = float(r["arrival_s"])
        except (TypeError, ValueError):
            raise TrafficError(f"--trace: {where(i)}: arrival_s {r['arrival_s']!r} is not a number") from None
        if not (math.isfinite(t) and t >= 0):
            raise TrafficError(f"--trace: {where(i)}: arrival_s must be a finite number >= 0, got {r['arrival_s']!r}")
        arr.append(t)
        pr.append(_whole(str(r["prompt_tokens"]), f"--trace: {where(i)}: prompt_tokens"))
        out.append(_whole(str(r["output_tokens"]), f"--trace: {where(i)}: output_tokens"))
    order = np.argsort(np.asarray(arr), kind="stable")
    return (np.asarray(arr, dtype=float)[order], np.asarray(pr, dtype=np.int64)[order],
            np.asarray(out, dtype=np.int64)[order])


def generate(arrivals: Arrivals, prompt: Lengths, output: Lengths, *, n: int | None = None,
             duration: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival times, prompt tokens, output tokens) of synthetic traffic, seeded."""
    if (n is None) == (duration is None):
        raise TrafficError("give either --requests N or --duration S")
    if n is not None and (int(n) != n or n < 1):
        raise TrafficError(f"--requests must be a whole number >= 1, got {n!r}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise TrafficError(f"--duration must be a number of seconds > 0, got {duration!r}")
    rng = np.random.default_rng(seed)
    t = arrivals.times(rng, n=n, duration=duration)
    m = len(t)
    return t, prompt.draw(m, rng), output.draw(m, rng)
