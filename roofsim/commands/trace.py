"""``roofsim trace MODEL``: trace one step of a model into a kernel graph, print what it
holds (ops, kernels, FLOPs, bytes by role, unknown ops) and optionally save it as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from tabulate import tabulate

from roofsim.cliargs import add_format_arg, add_step_args, fill_step_args
from roofsim.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("trace", help="trace a model (zoo id, config.json or pkg.mod:fn) into a kernel graph")
    p.add_argument("model", help="zoo id (see 'roofsim models list'), config.json path, or package.module:function")
    add_step_args(p)
    p.add_argument("-o", "--output", help="write the graph as JSON to this file")
    add_format_arg(p)
    p.set_defaults(func=run)


def _human(x: float, unit: str) -> str:
    for prefix in ("", "K", "M", "G", "T", "P"):
        if abs(x) < 1000:
            return f"{x:.3g} {prefix}{unit}"
        x /= 1000
    return f"{x:.3g} E{unit}"


def run(args: argparse.Namespace) -> int:
    from roofsim.outputs import atomic_file, check_file
    from workloads import build

    given = fill_step_args(args)
    for name in ("batch", "context", "prompt"):
        v = getattr(args, name)
        if v < (0 if name == "context" else 1):
            raise UserError(f"--{name} must be {'>= 0' if name == 'context' else '>= 1'}, got {v}")
    out_path = check_file(args.output, "-o") if args.output else None
    g = build(args.model, phase=args.phase, batch=args.batch, context=args.context, prompt=args.prompt,
              dtype=args.dtype, given=given, fusion=args.fusion)
    summary = g.summary()
    summary["kinds"] = dict(Counter(op.kind for op in g.ops))
    if out_path is not None:
        with atomic_file(out_path, "-o") as tmp:  # whole or not at all; concurrent writers never mix
            g.to_json(tmp)
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
        return 0
    print(_table(summary, g.meta))
    if out_path is not None:
        print(f"graph written to {out_path}", file=sys.stderr)
    return 0


def _table(s: dict, meta: dict) -> str:
    head = [
        ("model", meta.get("model")),
        ("phase", meta.get("phase")),
        ("batch", meta.get("batch")),
        ("context" if meta.get("phase") == "decode" else "prompt",
         meta.get("context") if meta.get("phase") == "decode" else meta.get("prompt")),
        ("dtype", meta.get("dtype")),
        ("ops", s["ops"]),
        ("kernels", s["kernels"]),
        ("FLOPs", _human(s["flops"], "FLOP")),
        ("bytes", _human(s["bytes"], "B")),
    ]
    for role, b in s["bytes_by_role"].items():
        head.append((f"  {role} bytes", _human(b, "B")))
    cfg = meta.get("config")
    if cfg:
        head.append(("params", _human(cfg["params"], "")))
    lines = [tabulate(head, tablefmt="plain")]
    lines.append("")
    lines.append(tabulate(sorted(s["kinds"].items(), key=lambda kv: -kv[1]), headers=["kind", "ops"]))
    unknown = s["unknown_ops"]
    lines.append("")
    if unknown:
        lines.append(f"unknown ops (no cost rule; bytes from their tensors, FLOPs not counted): {sum(unknown.values())}")
        lines.append(tabulate(sorted(unknown.items(), key=lambda kv: -kv[1]), headers=["op", "count"]))
    else:
        lines.append("unknown ops: none")
    return "\n".join(lines)
