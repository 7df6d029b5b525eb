"""Import Vidur's profiled GPU kernel medians as roofsim datasets (``validation/data/vidur-<gpu>/``).

Vidur (github.com/microsoft/vidur, MIT licence) commits per-operator times measured on
A100, H100 and A40 with the Sarathi/vLLM kernels a serving engine runs: fp16, one
model layer's operators at token counts 1..4096 and tensor-parallel degrees 1/2/4/8,
timed as the sum of their CUDA kernels' durations in a torch.profiler trace (no host
time), median over 20 identical layers. It also commits NCCL all-reduce times against
message size. Only the numbers are taken: each row becomes the roofsim case that traces
to the same kernels (same shapes, dtype and TP shard), with its provenance.

Mapping of Vidur's operator columns (``data/profiling/compute/<gpu>/<model>/mlp.csv``):

=============================  ==============================================================
Vidur column                   roofsim case (``fusion: serving`` where the kernel is fused)
=============================  ==============================================================
attn_pre_proj                  linear m=tokens, k=hidden, n=(heads + 2 kv_heads) head_dim / tp
attn_post_proj                 linear m=tokens, k=heads head_dim / tp, n=hidden
mlp_up_proj                    linear m=tokens, k=hidden, n=(2 if gated) intermediate / tp
mlp_down_proj                  linear m=tokens, k=intermediate / tp, n=hidden
attn_rope                      rotary on tokens x heads/tp (q) and kv_heads/tp (k) x rotary dims
mlp_act                        silu_mul rows=tokens, cols=intermediate / tp (gated); gelu otherwise
input/post_attention_layernorm rms_norm (layer_norm for phi-2) rows=tokens, cols=hidden
add                            one residual add of tokens x hidden (skipped for phi-2: two adds)
emb                            embedding gather (tp 1 only; a vocab-parallel lookup adds masking kernels)
=============================  ==============================================================

Weights are cold (a layer stack streams a model's worth of bytes between uses of one
weight) and the input activation is fresh (``params.cold = "weights"``). Biases: Qwen's
QKV projection and every phi-2 projection.

Collectives (``data/profiling/network/<gpu>_dgx/all_reduce.csv``): rows with every rank
in one node (``num_workers == devices_per_node``). Its ``size`` column is bytes: the
profiler writes ``size * 2`` for a buffer of ``size`` fp16 elements, and the smallest
size (2048) is twice the first element count of its grid (1024). Read as elements, the
8-GPU A100 all-reduce would move 348 GB/s of bus bandwidth over 300 GB/s NVLink.

``h100_pairwise_nvlink/send_recv.csv`` is byte-identical to the A100 one (not measured on
H100) and is not imported; send/recv and multi-node rows are not imported yet.

Run: ``python -m validation.importers.vidur --vidur /tmp/vidur --out validation/data``
(``fetch`` github:microsoft/vidur and ``git clone`` it first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from validation.harness.cases import Case
from validation.harness.store import COLUMNS

#: token counts kept (of Vidur's 1..4096 grid): every power of two and the half steps around 128
TOKENS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096)
#: all-reduce message sizes kept: about four per decade
MAX_COLLECTIVES_PER_GROUP = 24
GPUS = {"a100": "NVIDIA A100-SXM4-80GB", "h100": "NVIDIA H100 80GB HBM3", "a40": "NVIDIA A40"}
#: per model: norm kind, gated MLP, biases, rotary fraction (Vidur's model configs)
MODELS = {
    "meta-llama/Llama-2-7b-hf": {},
    "meta-llama/Llama-2-70b-hf": {},
    "meta-llama/Meta-Llama-3-8B": {},
    "meta-llama/Meta-Llama-3-70B": {},
    "codellama/CodeLlama-34b-Instruct-hf": {},
    "internlm/internlm-20b": {},
    "Qwen/Qwen-72B": {"qkv_bias": True},
    "microsoft/phi-2": {"norm": "layer_norm", "bias": True, "qkv_bias": True, "rotary": 0.4},
}
Z90 = 1.2815515655446004  # the normal quantile of 0.9: p10/p90 from a median and a standard deviation


def _git(vidur: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(vidur), *args], capture_output=True, text=True, check=True).stdout.strip()


def _row(case: Case, median_ms: float, std_ms: float, n: int, source: str) -> dict:
    med = median_ms * 1e-3
    sd = std_ms * 1e-3 if np.isfinite(std_ms) else 0.0
    return {
        "case_id": case.id, "family": case.family, "kind": case.kind, "op": case.op, "shape": case.shape_json(),
        "dtype": case.dtype, "params": json.dumps(case.params, sort_keys=True), "device": "cuda", "status": "ok",
        "median_s": med, "p10_s": max(med - Z90 * sd, 0.0), "p90_s": med + Z90 * sd, "repeats": n, "inner": 1,
        "threads": "", **case.work(), "cold": True, "timing": "device", "source": source,
    }


def _stat(grp: pd.DataFrame, col: str) -> tuple[float, float, int] | None:
    """(median ms, std ms, samples) of one operator column over the repeated runs of a row."""
    med, sd = f"time_stats.{col}.median", f"time_stats.{col}.std"
    if med not in grp or grp[med].isna().all():
        return None
    return float(grp[med].median()), float(grp[sd].median()), int(20 * len(grp))


def _cases(model: str, extra: dict, tokens: int, tp: int, h: int, heads: int, kvh: int, inter: int, gated: bool,
           vocab: int, base: dict) -> list[tuple[str, Case]]:
    """(Vidur column, the roofsim case that runs the same kernels) for one (model, tokens, tp) row."""
    hd = h // heads
    lin = {"bias": True} if extra.get("bias") else {}
    qkv = {"bias": True} if extra.get("qkv_bias") or extra.get("bias") else {}
    rot = max(2, int(round(hd * extra.get("rotary", 1.0))) // 2 * 2)
    out = [
        ("attn_pre_proj", Case("linear", "linear", {"m": tokens, "n": (heads + 2 * kvh) * hd // tp, "k": h}, "fp16",
                               {**base, **qkv, "source_op": "attn_pre_proj"})),
        ("attn_post_proj", Case("linear", "linear", {"m": tokens, "n": h, "k": heads * hd // tp}, "fp16",
                                {**base, **lin, "source_op": "attn_post_proj"})),
        ("mlp_up_proj", Case("linear", "linear", {"m": tokens, "n": (2 if gated else 1) * inter // tp, "k": h}, "fp16",
                             {**base, **lin, "source_op": "mlp_up_proj"})),
        ("mlp_down_proj", Case("linear", "linear", {"m": tokens, "n": h, "k": inter // tp}, "fp16",
                               {**base, **lin, "source_op": "mlp_down_proj"})),
        ("attn_rope", Case("rotary", "rope", {"tokens": tokens, "heads": heads // tp, "kv_heads": max(kvh // tp, 1),
                                              "head_dim": rot}, "fp16",
                           {**base, "fusion": "serving", "source_op": "attn_rope"})),
    ]
    if gated:
        out.append(("mlp_act", Case("elementwise", "silu_mul", {"rows": tokens, "cols": inter // tp}, "fp16",
                                    {**base, "fusion": "serving", "source_op": "mlp_act"})))
    else:
        out.append(("mlp_act", Case("elementwise", "gelu", {"n": tokens * inter // tp}, "fp16",
                                    {**base, "source_op": "mlp_act"})))
    norm = extra.get("norm", "rms_norm")
    for col in ("input_layernorm", "post_attention_layernorm"):
        out.append((col, Case("norm", norm, {"rows": tokens, "cols": h}, "fp16",
                              {**base, "fusion": "serving", "source_op": col})))
    if "bias" not in extra:
        out.append(("add", Case("elementwise", "add", {"n": tokens * h}, "fp16", {**base, "source_op": "add"})))
    if tp == 1:
        out.append(("emb", Case("gather", "embedding", {"tokens": tokens, "vocab": vocab, "hidden": h}, "fp16",
                                {**base, "source_op": "emb"})))
    return out


def compute_rows(vidur: Path, gpu: str) -> list[dict]:
    out = []
    for model, extra in MODELS.items():
        path = vidur / "data" / "profiling" / "compute" / gpu / model / "mlp.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path)
        g = df.groupby(["num_tokens", "num_tensor_parallel_workers"])
        src = f"microsoft/vidur:data/profiling/compute/{gpu}/{model}/mlp.csv"
        for (tokens, tp), grp in g:
            if tokens not in TOKENS:
                continue
            r = grp.iloc[0]
            h, heads, kvh, inter = int(r.n_embd), int(r.n_head), int(r.n_kv_head), int(r.n_expanded_embd)
            base = {"model": model, "tp": int(tp), "cold": "weights"}
            for col, case in _cases(model, extra, int(tokens), int(tp), h, heads, kvh, inter, bool(r.use_gated_mlp),
                                    int(r.vocab_size), base):
                s = _stat(grp, col)
                if s is not None:
                    out.append(_row(case, *s, source=src))
    return out


def collective_rows(vidur: Path, gpu: str) -> list[dict]:
    path = vidur / "data" / "profiling" / "network" / f"{gpu}_dgx" / "all_reduce.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    df = df[df["num_workers"] == df["devices_per_node"]]
    src = f"microsoft/vidur:data/profiling/network/{gpu}_dgx/all_reduce.csv"
    out = []
    for n, grp in df.groupby("num_workers"):
        sizes = np.sort(grp["size"].unique())
        want = np.unique(np.geomspace(sizes[0], sizes[-1], MAX_COLLECTIVES_PER_GROUP))
        keep = sorted({int(sizes[np.abs(np.log(sizes) - math.log(w)).argmin()]) for w in want})
        for size in keep:
            s = grp[grp["size"] == size]
            case = Case("collective", "all_reduce", {"bytes": int(size), "ranks": int(n)}, "fp16",
                        {"tp": int(n), "collective": "all_reduce"})
            out.append(_row(case, float(s["time_stats.all_reduce.median"].median()),
                            float(s["time_stats.all_reduce.std"].median()), int(3 * len(s)), src))
    return out


def write_dataset(vidur: Path, gpu: str, out_root: Path) -> Path:
    commit = _git(vidur, "rev-parse", "HEAD")
    rows = compute_rows(vidur, gpu) + collective_rows(vidur, gpu)
    out = out_root / f"vidur-{gpu}"
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df = df[[*COLUMNS, *[c for c in df.columns if c not in COLUMNS]]]
    df.to_csv(out / "measurements.csv", index=False)
    licence = (vidur / "LICENSE").read_text()
    meta = {
        "device": "cuda", "device_name": GPUS[gpu], "dataset": f"vidur-{gpu}",
        "source": {"repository": "https://github.com/microsoft/vidur", "commit": commit,
                   "files": sorted(set(df["source"])), "licence": "MIT",
                   "licence_sha256": hashlib.sha256(licence.encode()).hexdigest()},
        "measured_by": "Vidur's profiler: torch.profiler CUDA kernel time per operator (no host time), median over 20 "
                       "layers; NCCL all-reduce kernel time, median; fp16; Sarathi/vLLM kernels",
        "imported_by": "python -m validation.importers.vidur",
        "rows": int(len(df)), "date": "see the source commit",
        # Vidur stores milliseconds with three decimals: every figure is rounded to 1 us
        "resolution_s": 1e-6,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    (out / "LICENSE-vidur").write_text(licence)
    return out


#: the catalog system each GPU's dataset is fitted from, and the calibrated system it becomes
CATALOG_OF = {"a100": "a100-80gb", "h100": "h100-sxm", "a40": "a40"}


def fit_gpu(root: Path, gpu: str, catalog_dir: Path | None = None) -> dict:
    """Fit the catalog system to ``root/vidur-<gpu>`` (training models only) and write
    ``<catalog id>-cal.yaml`` into the catalog as a what-if file over the datasheet system."""
    from hw_models.catalog import load
    from validation.catalog_fit import fit_into_catalog

    base_id = CATALOG_OF[gpu]
    base = load(base_id)
    data = root / f"vidur-{gpu}"
    cal_id = f"{base_id}-cal"
    return fit_into_catalog(
        data, base_id, cal_id, name=f"{base.name}, calibrated on public kernel measurements",
        description=f"{base.description} Kernel rates, latencies and the NVLink collective model fitted "
                    f"to Vidur's profiled fp16 kernels ({data.as_posix()}); bf16 takes the fp16 "
                    "tensor-core and vector curves (same units, same datasheet rate).",
        title=f"Calibration of {GPUS[gpu]} on Vidur's profiled kernels",
        header=f"{cal_id}: {base_id} calibrated on {data.as_posix()}; written by "
               "python -m validation.importers.vidur --fit",
        transform=with_bf16_from_fp16, catalog_dir=catalog_dir)


def with_bf16_from_fp16(spec):
    """bf16 runs on the same tensor cores and vector units at the same datasheet rate as
    fp16 on these GPUs: give it the fp16 curves that were fitted (sources say so)."""
    spec = spec.model_copy(deep=True)
    for table in (spec.device.matrix, spec.device.vector):
        fp16, bf16 = table.get("fp16"), table.get("bf16")
        if fp16 is None or bf16 is None or fp16.peak.value != bf16.peak.value:
            continue
        note = " (fitted on fp16 rows; bf16 runs on the same units at the same datasheet rate)"
        if fp16.efficiency.source.startswith("measured:"):
            bf16.efficiency = fp16.efficiency.model_copy(update={"source": fp16.efficiency.source + note})
        bf16.kind_efficiency = {k: c.model_copy(update={"source": c.source + note})
                                for k, c in fp16.kind_efficiency.items()}
    return spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vidur", type=Path, help="a clone of github.com/microsoft/vidur (import its rows)")
    p.add_argument("--out", default=Path("validation/data"), type=Path)
    p.add_argument("--gpu", action="append", choices=sorted(GPUS), help="default: all")
    p.add_argument("--fit", action="store_true", help="fit each dataset and write its calibrated catalog system")
    args = p.parse_args(argv)
    for gpu in args.gpu or sorted(GPUS):
        if args.vidur:
            d = write_dataset(args.vidur, gpu, args.out)
            print(d, sum(1 for _ in open(d / "measurements.csv")) - 1, "rows")
        if args.fit:
            s = fit_gpu(args.out, gpu)["summary"]
            print(f"vidur-{gpu}: held-out median {100 * s['median_ape']:.1f}%, within 10% {100 * s['within_10pct']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
