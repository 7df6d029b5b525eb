"""``roofsim models list``: the model zoo (id, family, params, layers, source)."""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from roofsim.cliargs import add_command_group, add_subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command_group(subparsers, "models", "list the model zoo")
    add_subcommand(sub, "list", "one row per zoo model", run_list)


def _params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


def run_list(args: argparse.Namespace) -> int:
    from workloads import list_models

    rows = list_models()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["id"], r["family"], r["kind"], _params(r["params"]), r["layers"] or "-", r["source"]] for r in rows]
    print(tabulate(table, headers=["id", "family", "kind", "params", "layers", "source"]))
    return 0
