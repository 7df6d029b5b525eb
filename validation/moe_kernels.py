"""roofsim's MoE op against published fused-MoE kernel times (``validation/data/moe-kernels``).

Each figure is one MoE layer's kernel time for a stated shape (experts, top-k, hidden and
per-expert intermediate width on one GPU's shard), dtype and token count, measured by an
engine's own kernel benchmark with no host time. The check builds the ``moe`` op of that
layer from the tracer's own expectation (``workloads.leaves.moe_work``: the distinct
experts' weights, the experts' and router's FLOPs; a test checks it equals the traced op's
FLOPs, weight bytes and payload) and prices it on a catalog system with the cost model
alone, so an error here belongs to the MoE kernel, not to scheduling or launch.

Run: ``python -m validation.moe_kernels --hardware h100-sxm-cal``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from hw_models.errors import exit_for

FIGURES = Path(__file__).parent / "data" / "moe-kernels" / "figures.csv"


def moe_op(tokens: int, num_experts: int, top_k: int, hidden: int, intermediate: int, dtype: str):
    """The ``moe`` op of one gated MoE layer (gate-up ``2 I x H``, down ``H x I`` per expert)."""
    from simulator.opterms import ELEM_BYTES
    from workloads.leaves import moe_work
    from workloads.op import Access, Op
    from workloads.payloads import Moe

    elem = ELEM_BYTES[dtype]
    w = moe_work(tokens, num_experts, top_k, hidden, [2 * intermediate * hidden, hidden * intermediate])
    act = tokens * hidden * elem
    reads = [Access("x", act, "activation"), Access("gate", hidden * num_experts * elem, "weight")]
    reads += [Access(name, int(round(n * elem)), "weight") for name, n in zip(("gate_up", "down"), w["elements"], strict=True)]
    return Op(id=0, name="moe::check", kind="moe", dtype=dtype, flops={dtype: w["flops"]},
              reads=reads, writes=[Access("y", act, "activation")],
              attrs=Moe(tokens=tokens, num_experts=num_experts, top_k=top_k, expected_experts=w["expected_experts"],
                        hidden=hidden, intermediate=intermediate, router_flops=w["router_flops"]).attrs())


class MoeCheckError(ValueError):
    user_facing = True


def gpu_of(hardware: str) -> str:
    """The GPU a catalog system prices: its id without the ``-cal`` of a calibrated file."""
    return hardware.removesuffix("-cal")


def compare(hardware: str, figures: str | Path = FIGURES) -> pd.DataFrame:
    """Every figure measured on ``hardware``'s GPU with roofsim's time for it there and the
    signed error."""
    from hw_models.catalog import load
    from hw_models.units import parse
    from simulator.costmodel import op_cost

    system = load(hardware)
    df = pd.read_csv(figures)
    gpus = sorted(set(df["gpu"]))
    df = df[df["gpu"] == gpu_of(hardware)]
    if df.empty:
        raise MoeCheckError(f"--hardware {hardware}: no MoE kernel figure was measured on it; "
                            f"figures exist for {', '.join(gpus)} (and their -cal systems)")
    rows = []
    for _, r in df.iterrows():
        op = moe_op(int(r["tokens"]), int(r["num_experts"]), int(r["top_k"]), int(r["hidden"]),
                    int(r["intermediate"]), str(r["dtype"]))
        c = op_cost(op, system)
        measured = parse(f"{r['value']} {r['unit']}", "time")
        rows.append({"figure_id": r["figure_id"], "model": r["model"], "tokens": int(r["tokens"]),
                     "measured_s": measured, "predicted_s": c.time_s, "bound": c.bound,
                     "error": c.time_s / measured - 1})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hardware", default="h100-sxm-cal", help="catalog system to price the figures on")
    args = p.parse_args(argv)
    try:
        t = compare(args.hardware)
    except Exception as e:  # bad input (an unknown system, one without figures): one line
        return exit_for(e)
    print(f"MoE kernel figures on {args.hardware} ({FIGURES.parent.name}):")
    for model, g in t.groupby("model", sort=False):
        print(f"  {model}")
        for _, r in g.iterrows():
            print(f"    {r['figure_id']:42s} {r['tokens']:5d} tokens  measured {r['measured_s'] * 1e6:8.1f} us  "
                  f"roofsim {r['predicted_s'] * 1e6:8.1f} us  {100 * r['error']:+6.1f}%  {r['bound']}")
        a = g["error"].abs()
        print(f"    median |error| {a.median():.1%}, within ±10% {(a <= 0.10).mean():.1%}, "
              f"signed median {g['error'].median():+.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
