"""`make bench`: run every tests/benchmarks/bench_*.py and print one table.

Each module exposes ``run() -> list[dict]`` with keys benchmark, value, unit, note.
Figures are medians over repeats (these machines are shared and noisy); no asserts.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from tabulate import tabulate


def main(argv: list[str]) -> int:
    only = set(argv)
    here = Path(__file__).parent
    rows, targets = [], []
    for mod in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if not mod.name.startswith("bench_") or (only and mod.name not in only):
            continue
        t0 = time.perf_counter()
        print(f"running {mod.name} ...", file=sys.stderr, flush=True)
        for r in importlib.import_module(f"tests.benchmarks.{mod.name}").run():
            rows.append([mod.name.removeprefix("bench_"), r["benchmark"], _num(r["value"]), r["unit"], r.get("note", "")])
            if "target" in r:
                targets.append(r)
        print(f"  {mod.name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["suite", "benchmark", "value", "unit", "note"]))
    if targets:
        # the speed targets with their figure before the work that set them: read the ratio
        print("\ntargets (ratio > 1: faster than before)")
        print(tabulate([[r["benchmark"], _num(r["value"]), r["unit"], _num(r["before"]) if r["before"] else "",
                         f"{r['ratio']:.1f}x" if r["ratio"] else "", r["target"], "yes" if r["met"] else "NO"]
                        for r in targets],
                       headers=["benchmark", "value", "unit", "before", "ratio", "target", "met"]))
    return 0


def _num(v: float) -> str:
    return f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
