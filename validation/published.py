"""Predict published end-to-end engine figures (``validation/data/published/cases.csv``).

Each case states an engine, a mode, hardware, model, precision, batch, prompt and output
lengths, tensor-parallel degree and one measured figure. roofsim simulates the steps the
figure is made of, in the execution mode that matches the engine (``MODES``, one
documented table), and reports the error as it is.

How a figure is made of steps (``decode(B, L)`` is one decode step of B sequences with
L tokens in the cache, ``prefill(B, P)`` one prefill of B prompts of P tokens; a
generation of O tokens after a P-token prompt decodes on average at ``L = P + O/2``):

=========================  =========================================================
metric                     prediction
=========================  =========================================================
``decode_ms_per_token``,   ``decode(B, P + O/2)``
``tpot_ms``
``decode_tokens_per_s``    ``B / decode(B, P + O/2)``
``ttft_ms``, ``prefill_ms``  ``prefill(B, P)``
``e2e_latency_s``          ``prefill(B, P) + O decode(B, P + O/2)``
``output_tokens_per_s``    ``B O / e2e`` (or ``B / decode`` when O is not stated)
``total_tokens_per_s``     ``B (P + O) / e2e`` (a prompt-only run: ``B P / prefill``)
``requests_per_s``         ``B / e2e``
=========================  =========================================================

Pipeline- and expert-parallel cases (``pp`` or ``ep`` > 1, issue 16) run the same
formulas on ``simulator.scaleout``: the layout ``tp x ep x pp`` on as many nodes of the
system as it needs, ``M`` micro-batches (one per stage, fewer when the batch cannot be
cut that finely), each EP rank running attention for ``batch / ep`` sequences (a batch
``ep`` does not divide is read per rank, the DP-attention convention of the SGLang EP
rows). Rates (``*_per_s``) use the interval the pipeline sustains when a serving engine
overlaps consecutive steps (``steady_step_s``); latencies the time one batch takes
through it (``step_time_s``). Figures "per node" are divided by the nodes used.

A figure "per GPU" is multiplied by the GPUs it ran on (TP x PP x EP). Quantized cases run
the precision and kernel family their ``precision`` and ``quant_kernel`` columns name
(``validation.quantcases``: int8/int4 weight-only, fp8 W8A8 with or without an fp8 KV
cache, Marlin, ExLlama, bitsandbytes). Cases without a fixed batch (variable-length
datasets, request rates) and formats roofsim does not model (fp4, 2:4 sparse, w4a8) are
listed as not predicted, with the reason, never silently dropped. The held-out third is
the ``split`` column, fixed when the set was collected; ``summary`` reports 16-bit and
quantized held-out cases apart as well as together.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from .quantcases import FLOAT, precision_of

CASES = Path(__file__).parent / "data" / "published" / "cases.csv"
#: the committed predictions of every case on the calibrated systems: a test pins them, so a
#: change that moves any published figure says so (``write_predictions`` rewrites them)
PREDICTIONS = CASES.with_name("predictions.csv")
PINNED_COLUMNS = ["case_id", "split", "mode", "system", "dtype", "predicted", "error", "note"]

#: engine (and stated mode) -> (fusion policy, launch mode): the nearest roofsim setting
MODES: dict[tuple[str, str], tuple[str, str]] = {
    ("vllm", "cuda-graph"): ("serving", "graph"),
    ("vllm", "eager"): ("serving", "eager"),
    ("sglang", "cuda-graph"): ("serving", "graph"),
    ("sglang", "eager"): ("serving", "eager"),
    ("tensorrt-llm", "cuda-graph"): ("serving", "graph"),
    ("lmdeploy", "*"): ("serving", "graph"),
    ("tgi", "eager"): ("serving", "eager"),  # TGI before 1.4 had no CUDA graphs
    ("tgi", "*"): ("serving", "graph"),
    ("deepspeed-fastgen", "*"): ("serving", "eager"),
    ("mlc-llm", "*"): ("serving", "graph"),
    ("gpt-fast", "*"): ("gpt-fast", "graph"),
    ("torchao", "*"): ("gpt-fast", "graph"),
    ("hf-transformers", "*"): ("none", "eager"),
    ("optimum", "*"): ("none", "eager"),
    ("llama.cpp", "*"): ("serving", "eager"),
    ("exllama", "*"): ("serving", "eager"),
    ("exllamav2", "*"): ("serving", "eager"),
    ("llm-awq", "*"): ("serving", "eager"),
    ("tinychat", "*"): ("serving", "eager"),
    ("nim", "*"): ("serving", "graph"),
    # DeepSeek's own inference system (fused serving kernels; decode captured as graphs)
    ("deepseek-internal", "*"): ("serving", "graph"),
}

#: engine -> its CPU seconds per step outside the kernels (``ENGINES`` file, fitted by
#: ``validation.engine_fit`` on the engine's training cases); engines not listed add none
ENGINES = CASES.with_name("engines.yaml")


@functools.cache
def engine_steps(path: str | Path = ENGINES) -> Mapping[str, float]:
    """Each listed engine's per-step CPU time in seconds (``ENGINES``), read once."""
    import yaml

    from hw_models.quantity import Seconds

    data = yaml.safe_load(Path(path).read_text()) or {}
    return MappingProxyType({engine: Seconds(**entry["step_overhead"]).value for engine, entry in data.items()})


#: published model ids -> roofsim zoo ids (architecture twins share an id)
MODELS = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b", "meta-llama/Llama-2-7b-chat-hf": "llama-2-7b",
    "NousResearch/Llama-2-7b-chat-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b", "meta-llama/Llama-2-13b-chat-hf": "llama-2-13b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b", "meta-llama/Llama-2-70b-chat-hf": "llama-2-70b",
    "codellama/CodeLlama-7b-hf": "codellama-7b",
    "meta-llama/Meta-Llama-3-8B": "llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3-70B": "llama-3.1-70b", "meta-llama/Meta-Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b", "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    # quantized checkpoints of the same architectures (GPTQ repacks, FP8 exports, Llama 3.3
    # which keeps Llama 3.1 70B's config)
    "TheBloke/Llama-2-7B-GPTQ": "llama-2-7b", "TheBloke/Llama-2-13B-chat-GPTQ": "llama-2-13b",
    "TheBloke/Llama-2-70B-GPTQ": "llama-2-70b", "meta-llama/Llama-3.3-70B-Instruct": "llama-3.1-70b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b", "nvidia/Llama-3.3-70B-Instruct-FP8": "llama-3.1-70b",
    # scale-out models; DeepSeek-R1 keeps DeepSeek-V3's architecture
    "deepseek-ai/DeepSeek-V3": "deepseek-v3", "deepseek-ai/DeepSeek-R1": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1-0528": "deepseek-v3", "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b",
    "meta-llama/Meta-Llama-3.1-405B": "llama-3.1-405b",
}

#: published hardware labels -> catalog ids (an unstated H100 or A100 form is taken as SXM; said per case)
HARDWARE = {"h100-unspecified": "h100-sxm", "a100-unspecified": "a100-80gb"}



@dataclass
class Prediction:
    value: float = math.nan
    note: str = ""
    steps: str = ""


def mode_of(engine: str, mode: str) -> tuple[str, str] | None:
    return MODES.get((engine, mode)) or MODES.get((engine, "*"))


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _to_base(value: float, unit: str, metric: str) -> float:
    """A published value in seconds (latencies) or per-second rates."""
    u = str(unit).strip().lower()
    if metric in ("decode_ms_per_token", "tpot_ms", "ttft_ms", "prefill_ms", "e2e_latency_s"):
        return value * 1e-3 if u.startswith("ms") else value
    return value


def load_cases(path: str | Path = CASES) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df


def system_of(hw: str, calibrated: bool) -> str | None:
    """The catalog system a case's hardware runs on (its calibrated one where there is one)."""
    from hw_models.catalog import list_systems

    hw = HARDWARE.get(hw, hw)
    known = set(list_systems())
    if calibrated and f"{hw}-cal" in known:
        return f"{hw}-cal"
    return hw if hw in known else None


def predict_case(row: pd.Series, calibrated: bool = True, cache: dict | None = None,
                 systems: dict[str, Any] | None = None, engines: Mapping[str, float] | None = None) -> Prediction:
    """The figure ``row`` states, predicted; ``Prediction.note`` says why not where it cannot be.
    ``systems`` replaces catalog systems by id with given specs (a fit's candidates);
    ``engines`` the engines' per-step CPU seconds (default: ``engine_steps()``)."""
    from simulator import simulate
    from workloads import build

    cache = {} if cache is None else cache
    precision, why = precision_of(str(row["precision"]), str(row.get("quant_kernel", "") or ""))
    if precision is None:
        return Prediction(note=why)
    model = MODELS.get(str(row["model"]))
    if model is None:
        return Prediction(note=f"model {row['model']} is not in the zoo")
    hw = system_of(str(row["hardware"]), calibrated)
    if hw is None:
        return Prediction(note=f"hardware {row['hardware']} is not in the catalog")
    m = mode_of(str(row["engine"]), str(row["mode"]))
    if m is None:
        return Prediction(note=f"engine {row['engine']} ({row['mode']}) has no mode mapping")
    fusion, launch = m
    batch = _num(row["batch"])
    if batch is None:
        return Prediction(note="no fixed batch (a variable-length dataset or a request rate)")
    b = int(batch)
    tp = int(_num(row["tp"]) or 1)
    pp = int(_num(row["pp"]) or 1)
    ep = int(_num(row.get("ep")) or 1)
    prompt = int(_num(row["prompt_tokens"]) or 1)
    out_tokens = _num(row["output_tokens"])
    metric = str(row["metric"])
    dtype = str(precision)
    rate = metric.endswith("_per_s")
    # the engine's scheduler and sampler run between steps, while the GPU waits
    overhead = (engine_steps() if engines is None else engines).get(str(row["engine"]), 0.0)

    def step(phase: str, length: int) -> float:
        key = (model, hw, phase, b, length, dtype, fusion, launch, tp)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = build(model, phase=phase, batch=b, context=length, prompt=length, dtype=dtype, fusion=fusion)
                cache[key] = float(simulate(g, (systems or {}).get(hw, hw), launch=launch, tp=tp).step_time_s)
        return cache[key] + overhead

    if pp > 1 or ep > 1:
        try:
            step = _scaled_step(model, hw, b, dtype, fusion, launch, tp, pp, ep, rate, cache, overhead)
            b = step.batch
        except Exception as e:
            if not getattr(e, "user_facing", False):
                raise
            return Prediction(note=f"cannot simulate: {str(e).splitlines()[0]}")

    o = int(out_tokens) if out_tokens else None
    mid = prompt + (o // 2 if o else 0)
    try:
        if metric in ("decode_ms_per_token", "tpot_ms"):
            return Prediction(step("decode", mid), steps=f"decode(B={b}, L={mid})")
        if metric == "decode_tokens_per_s":
            return Prediction(b / step("decode", mid), steps=f"B / decode(B={b}, L={mid})")
        if metric in ("ttft_ms", "prefill_ms"):
            return Prediction(step("prefill", prompt), steps=f"prefill(B={b}, P={prompt})")
        pre = step("prefill", prompt) if prompt > 1 else 0.0
        if metric == "total_tokens_per_s" and not o:
            return Prediction(b * prompt / step("prefill", prompt), steps=f"B P / prefill(B={b}, P={prompt})")
        if metric == "output_tokens_per_s" and not o:
            return Prediction(b / step("decode", mid), note="output length not stated: decode only",
                              steps=f"B / decode(B={b}, L={mid})")
        if not o:
            return Prediction(note=f"{metric} needs an output length")
        e2e = pre + o * step("decode", mid)
        steps = f"prefill(B={b}, P={prompt}) + {o} decode(B={b}, L={mid})"
        if metric == "e2e_latency_s":
            return Prediction(e2e, steps=steps)
        if metric == "output_tokens_per_s":
            return Prediction(b * o / e2e, steps=f"B O / ({steps})")
        if metric == "total_tokens_per_s":
            return Prediction(b * (prompt + o) / e2e, steps=f"B (P+O) / ({steps})")
        if metric == "requests_per_s":
            return Prediction(b / e2e, steps=f"B / ({steps})")
    except Exception as e:
        if not getattr(e, "user_facing", False):
            raise
        return Prediction(note=f"cannot simulate: {str(e).splitlines()[0]}")
    return Prediction(note=f"metric {metric} is not modelled")


def nodes_for(hw: str, tp: int, pp: int, ep: int) -> int:
    """Nodes of ``hw`` a TP x PP x EP layout needs."""
    from hw_models.catalog import load

    return max(1, math.ceil(tp * pp * ep / load(hw).num_devices))


def _scaled_step(model: str, hw: str, b: int, dtype: str, fusion: str, launch: str, tp: int, pp: int, ep: int,
                 rate: bool, cache: dict, overhead: float = 0.0):
    """``step(phase, length)`` of a pipeline- or expert-parallel case (module doc)."""
    from hw_models.catalog import load
    from simulator.layout import with_nodes
    from simulator.scaleout import simulate_scaled
    from workloads import build

    system = with_nodes(load(hw), nodes_for(hw, tp, pp, ep))
    per_rank = b // ep if b % ep == 0 else b
    M = max(k for k in range(1, pp + 1) if per_rank % k == 0)
    micro = per_rank // M

    def step(phase: str, length: int) -> float:
        key = ("scaled", model, hw, phase, b, length, dtype, fusion, launch, tp, pp, ep, rate)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = build(model, phase=phase, batch=micro, context=length, prompt=length, dtype=dtype, fusion=fusion)
                res = simulate_scaled(g, system, tp=tp, pp=pp, ep=ep, microbatches=M, launch=launch)
                cache[key] = float(res.totals["steady_step_s"] if rate else res.step_time_s)
        return cache[key] + overhead

    # the figures divide by the batch the formulas use: the whole layout's sequences
    step.batch = per_rank * ep  # type: ignore[attr-defined]
    return step


def predict_all(df: pd.DataFrame | None = None, calibrated: bool = True,
                systems: dict[str, Any] | None = None, engines: Mapping[str, float] | None = None,
                cache: dict | None = None) -> pd.DataFrame:
    """Every case with ``predicted``, ``measured`` (base units), ``error`` (predicted/measured - 1), ``note``.
    ``cache`` keeps simulated steps across calls with the same ``calibrated`` and ``systems``."""
    df = load_cases() if df is None else df
    engines = engine_steps() if engines is None else engines
    cache = {} if cache is None else cache
    rows = []
    for _, r in df.iterrows():
        p = predict_case(r, calibrated, cache, systems, engines)
        if p.steps and engines.get(str(r["engine"])):
            p.steps += f"; every step + {engines[str(r['engine'])] * 1e3:.3g} ms of {r['engine']} CPU (engines.yaml)"
        measured = _to_base(float(r["value"]), r["unit"], str(r["metric"]))
        per_gpu = "per gpu" in str(r["unit"]).lower()
        tp, pp, ep = (int(_num(r[k]) or 1) for k in ("tp", "pp", "ep"))
        if per_gpu and np.isfinite(p.value):
            p.value /= tp * pp * ep
        if "per node" in str(r["unit"]).lower() and np.isfinite(p.value) and p.steps:
            sys_id = system_of(str(r["hardware"]), calibrated)
            if sys_id:
                p.value /= nodes_for(sys_id, tp, pp, ep)
        mode = mode_of(str(r["engine"]), str(r["mode"]))
        rows.append({
            "case_id": r["case_id"], "split": r["split"], "engine": r["engine"],
            "mode": f"{mode[0]}+{mode[1]}" if mode else "", "hardware": r["hardware"],
            "system": system_of(str(r["hardware"]), calibrated) or "", "model": r["model"],
            "precision": r["precision"], "dtype": _spelling(r), "tp": r["tp"], "batch": r["batch"],
            "metric": r["metric"],
            "measured": measured, "predicted": p.value, "error": p.value / measured - 1 if np.isfinite(p.value) else math.nan,
            "steps": p.steps, "note": p.note,
        })
    return pd.DataFrame(rows)


def _spelling(row: pd.Series) -> str:
    """The roofsim precision a case runs (``--precision`` spelling), or "" when none."""
    p, _ = precision_of(str(row["precision"]), str(row.get("quant_kernel", "") or ""))
    return str(p) if p is not None else ""


def summary(pred: pd.DataFrame) -> dict[str, Any]:
    """Per split and per engine mode: n, median |error|, share within ±10% and ±15%."""
    ok = pred[np.isfinite(pred["error"])]

    def stats(g: pd.DataFrame) -> dict[str, Any]:
        a = g["error"].abs()
        if not len(a):
            return {"n": 0, "median_abs_error": None, "within_10pct": None, "within_15pct": None}
        return {"n": int(len(a)), "median_abs_error": float(a.median()), "within_10pct": float((a <= 0.10).mean()),
                "within_15pct": float((a <= 0.15).mean())}

    held = ok[ok["split"] == "heldout"]
    quant = ~held["precision"].isin(FLOAT) if "precision" in held else pd.Series(False, index=held.index)
    return {
        "heldout": stats(held),
        "heldout_16bit": stats(held[~quant]),
        "heldout_quantized": stats(held[quant]),
        "train": stats(ok[ok["split"] == "train"]),
        "by_mode": {m: stats(g) for m, g in ok[ok["split"] == "heldout"].groupby("mode")},
        "not_predicted": int((~np.isfinite(pred["error"])).sum()),
        "cases": int(len(pred)),
    }


def write_predictions(path: str | Path = PREDICTIONS) -> pd.DataFrame:
    """Predict every case on the calibrated systems and write the pinned table."""
    pred = predict_all(calibrated=True)[PINNED_COLUMNS]
    pred.to_csv(path, index=False, float_format="%.10g")
    return pred
