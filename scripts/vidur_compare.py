"""Side by side with Vidur (README, "Serving: side by side with Vidur").

Reads Vidur's request metrics from runs made in its own venv (see the README for the
command) and runs roofsim serve on the same configuration: A100 80GB, Llama-2-70B, TP 2,
vLLM scheduler (batch cap 128, 4096 tokens per batch, 16-token blocks, 10% memory margin),
fixed 512-token prompts and 128-token outputs, Poisson arrivals, 1000 requests per rate.

    python scripts/vidur_compare.py /tmp/vidur14/res_q{RATE} ...    # directories named res_q<rate>

TTFT is arrival to first token (Vidur's prefill_e2e_time); TPOT is (E2E - TTFT) / 127 on
both sides (the prefill makes the first of the 128 output tokens).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

N, PROMPT, OUTPUT = 1000, 512, 128


def vidur_row(d: Path) -> dict:
    f = next(d.glob("*/request_metrics.csv"))
    df = pd.read_csv(f)
    ttft = df["prefill_e2e_time"].to_numpy() * 1e3
    tpot = (df["request_e2e_time"] - df["prefill_e2e_time"]).to_numpy() / (OUTPUT - 1) * 1e3
    log = d.parent / f"rlog_q{rate_of(d)}.txt"
    wall = float(re.search(r"([0-9.]+) s wall", log.read_text()).group(1)) if log.exists() else float("nan")
    return {"ttft50": np.percentile(ttft, 50), "ttft99": np.percentile(ttft, 99), "tpot50": np.percentile(tpot, 50),
            "tpot99": np.percentile(tpot, 99), "wall": wall}


def rate_of(d: Path) -> str:
    return d.name.split("res_q")[-1]


#: Vidur's memory planner for this case: 80 GiB (not the 80 GB an A100 has) x 0.9 less the layers' weights
#: (no embeddings, LM head or activations) holds 13 requests of 4096 tokens: 13 x 256 = 3328 blocks (its run logs memory use in 3328ths); its vLLM scheduler keeps the batch cap of 128
VIDUR_BATCH, VIDUR_BLOCKS = 128, 13 * 256


def roofsim_row(qps: float, vidur_memory: bool = False) -> dict:
    from simulator.serving import SchedulerConfig, ServeConfig, serve
    from simulator.serving.traffic import Arrivals, Lengths, generate

    cfg = ServeConfig(model="llama-2-70b", hardware="a100-80gb-cal", tp=2, scheduler="continuous",
                      sched=SchedulerConfig(max_num_seqs=VIDUR_BATCH if vidur_memory else 128,
                                            max_num_batched_tokens=4096, block_size=16),
                      gpu_memory_utilization=0.9, dtype="fp16", num_gpu_blocks=VIDUR_BLOCKS if vidur_memory else None)
    a, p, o = generate(Arrivals("poisson", qps), Lengths("fixed", PROMPT), Lengths("fixed", OUTPUT), n=N, seed=42)
    t = time.perf_counter()
    res = serve(cfg, a, p, o)
    wall = time.perf_counter() - t
    df = res.requests
    return {"ttft50": df["ttft_s"].quantile(0.5) * 1e3, "ttft99": df["ttft_s"].quantile(0.99) * 1e3,
            "tpot50": df["tpot_s"].quantile(0.5) * 1e3, "tpot99": df["tpot_s"].quantile(0.99) * 1e3, "wall": wall,
            "kv_blocks": res.memory["kv_blocks_per_replica"], "preempt": int(df["preemptions"].sum())}


def main(dirs: list[str]) -> None:
    roofsim_row(1.0)  # builds the step model once, so the wall times below are the simulation's
    rows = []
    for d in sorted(map(Path, dirs), key=lambda p: float(rate_of(p))):
        q = float(rate_of(d))
        v = vidur_row(d)
        for mem in (False, True):
            r = roofsim_row(q, mem)
            rows.append((q, "Vidur's 3328 blocks" if mem else "own memory", v, r))
    print("| req/s | roofsim KV | P50 TTFT ms (Vidur / roofsim) | P99 TTFT ms | P50 TPOT ms | P99 TPOT ms "
          "| roofsim preemptions | wall s (Vidur / roofsim) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for q, mem, v, r in rows:
        cells = [f"{q:g}", mem]
        for k in ("ttft50", "ttft99", "tpot50", "tpot99"):
            a, b = v[k], r[k]
            fmt = ".0f" if k.startswith("ttft") else ".1f"
            cells.append(f"{a:{fmt}} / {b:{fmt}} ({100 * (b / a - 1):+.0f}%)")
        cells.append(str(r["preempt"]))
        cells.append(f"{v['wall']:.1f} / {r['wall']:.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
