"""``roofsim cache info|clear``: the graph cache (traced graphs and parametric families).

The cache lives in ``$ROOFSIM_CACHE``, else the user cache folder (``~/.cache/roofsim``
on Linux); ``workloads.graphcache`` says what is kept and how it is keyed. Clearing it
is always safe: the next run traces again.
"""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from roofsim.cliargs import add_command_group, add_subcommand

PLURAL = {"family": "families"}


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command_group(subparsers, "cache", "show or clear the graph cache")
    add_subcommand(sub, "info", "where the cache is, how many entries, how big", run_info)
    add_subcommand(sub, "clear", "remove every cached graph and family", run_clear, formats=False)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def run_info(args: argparse.Namespace) -> int:
    from workloads import graphcache

    s = graphcache.info()
    if args.format == "json":
        print(json.dumps(s, indent=2, sort_keys=True))
        return 0
    kinds = ", ".join(f"{n} {k if n == 1 else PLURAL.get(k, k + 's')}" for k, n in sorted(s["by_kind"].items())) or "-"
    rows = [["folder", f"{s['dir']} ({s['from']})"], ["entries", f"{s['entries']} ({kinds})"],
            ["size", _size(s["bytes"])]]
    print(tabulate(rows, tablefmt="plain"))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    from workloads import graphcache

    n = graphcache.clear()
    print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {graphcache.cache_dir()}")
    return 0
