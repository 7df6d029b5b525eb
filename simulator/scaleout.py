"""Scale-out: tensor x expert x pipeline parallelism over nodes, every device that differs simulated.

``simulate_scaled(graph, system, tp=, pp=, ep=, nodes=)`` runs one step of a model laid
out over ``tp * ep * pp`` devices of ``system`` (``nodes`` nodes of ``num_devices`` each):

* **Ranks.** TP is innermost (neighbouring GPUs), then EP, then PP: stage ``s`` owns
  ranks ``[s·tp·ep, (s+1)·tp·ep)``, and rank ``r`` lives on node ``r // num_devices``.
  A group that fits in a node talks over ``interconnect`` (NVLink); one that spans nodes
  runs its collectives hierarchically (``hw_models.physics.hierarchical_collective``):
  inside each node on the interconnect, across nodes on every GPU's own NIC
  (``system.network``). Both levels are costed and reported.
* **Graph.** The step graph (built by the caller at one micro-batch of one EP rank's
  sequences) is sharded for TP (``workloads.tensor_parallel``), then for EP
  (``workloads.expert_parallel``: dispatch and combine all-to-alls, ``E/ep`` experts,
  the busiest rank's load ``imbalance`` x the mean).
* **Stages.** Decoder layers are split into ``pp`` contiguous stages balanced by time:
  each layer's cost-model time (ops outside the layers go with the first or last stage)
  and the split that minimises the slowest stage. Each stage is simulated on its own
  (one representative device per stage: stages differ, the TP and EP ranks inside a
  stage are symmetric).
* **Schedule.** ``M`` micro-batches flow through the stages (GPipe order for one step):
  stage ``s`` starts micro-batch ``m`` when it has finished ``m-1`` and ``m``'s
  activations have arrived from stage ``s-1`` (a point-to-point send of
  ``tokens x hidden x activation bytes`` over the interconnect or, between nodes, the
  network). ``step_time_s`` is the makespan; each device's idle time in it is its
  ``pipeline_bubble``. For equal stages and free sends the bubble is ``(S-1)/(M+S-1)``
  of the step. A serving engine overlaps consecutive steps: a micro-batch's next step
  enters stage 0 as soon as its token leaves the last stage, while the other
  micro-batches keep the stages busy. The interval a pipeline sustains per step,
  ``steady_step_s``, is the larger of ``M x`` the slowest stage's micro-batch time (the
  stages are never idle) and one micro-batch's round trip through all stages and sends
  (too few micro-batches to fill the pipe: with ``M = 1`` nothing overlaps).
* **Memory.** Per stage: its layers' weights (MoE layers: all of the rank's experts),
  its layers' KV cache and the stage graph's peak activations. Weights and KV cache of
  the stages add up to the whole model's.

``time_by_bound`` of the result: per device, each stage's terms times ``M`` plus its
bubble; the result's own is the mean over devices (it sums to ``step_time_s``).

Ranks and collectives live in ``simulator.layout``; stages, schedule and per-stage
memory in ``simulator.pipeline``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hw_models import physics
from workloads.payloads import payload

from .layout import Layout, ScaleOutError, cost_fn, layout, link_time, with_nodes
from .pipeline import balance, schedule, stage_graphs, stage_memory
from .result import StepTotals

CONFIG = Path(__file__).with_name("scaleout.yaml")
#: names of the two link levels as the report shows them
LEVELS = {"interconnect": "intra-node", "network": "inter-node"}


@functools.lru_cache(maxsize=1)
def defaults() -> dict[str, Any]:
    with open(CONFIG) as f:
        return yaml.safe_load(f)


def default_imbalance() -> float:
    return float(defaults()["moe_imbalance"]["value"])


def activation_bytes() -> int:
    return int(defaults()["activation_bytes"]["value"])


def layer_times(graph, system, placement, lay: Layout) -> tuple[dict[int, float], float, float, list[int | None]]:
    """Cost-model seconds per decoder layer, of the ops before the first layer (head) and
    after the last (tail), and each op's layer (``None``: outside the layers)."""
    from .engine import layer_of

    costs = cost_fn(lay)(graph, system, placement)
    per: dict[int, float] = {}
    head = tail = 0.0
    where = [layer_of(op.module) for op in graph.ops]
    seen = False
    for L, c in zip(where, costs, strict=True):
        t = float(c.time_s)
        if L is None:
            if seen:
                tail += t
            else:
                head += t
            continue
        seen = True
        per[L] = per.get(L, 0.0) + t
    return per, head, tail, where


# -- the whole --------------------------------------------------------------------------


@dataclass
class ScaledResult(StepTotals):
    """One step over a TP x EP x PP layout (see the module doc)."""

    meta: dict[str, Any]
    layout: Layout
    stages: list  # SimResult per stage (one micro-batch)
    starts: list[int]  # first layer of each stage
    stage_s: list[float]
    send_s: list[float]
    send_bytes: float
    start: np.ndarray
    end: np.ndarray
    memory: list[dict[str, float]]
    capacity: float
    totals: dict[str, Any] = field(default_factory=dict)
    time_by_bound: dict[str, float] = field(default_factory=dict)
    device_time_by_bound: list[dict[str, float]] = field(default_factory=list)
    links: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        from .result import SUMMARY_KEYS

        out = {k: self.meta.get(k) for k in SUMMARY_KEYS[:SUMMARY_KEYS.index("step_time_s")]}
        out.update({k: self.meta.get(k) for k in ("pp", "ep", "nodes", "microbatches", "ep_imbalance")})
        out.update(self.totals)
        out["bottleneck"] = self.bottleneck
        out["time_by_bound"] = dict(sorted(self.time_by_bound.items()))
        out["stages"] = [{"layers": [int(lo), int(hi)], "microbatch_s": t, "send_s": snd,
                          "link": (LEVELS[self.layout.p2p_level(s)] if s < len(self.stage_s) - 1 else None),
                          "memory_bytes": mem, "time_by_bound": dict(sorted(tbb.items()))}
                         for s, (lo, hi, t, snd, mem, tbb) in enumerate(zip(
                             self.starts, [*self.starts[1:], self.meta["layers_total"]], self.stage_s,
                             [*self.send_s, 0.0], self.memory, self.device_time_by_bound, strict=True))]
        out["links"] = self.links
        return out

    def summary_json(self) -> str:
        import json

        from .result import _round

        return json.dumps(_round(self.summary()), sort_keys=True, indent=2)

    def to_perfetto(self, path=None) -> str:
        import json

        doc = {"traceEvents": self.trace_events(), "displayTimeUnit": "ns"}
        text = json.dumps(doc)
        if path is not None:
            Path(path).write_text(text)
        return text

    def trace_events(self) -> list[dict]:
        """A process per pipeline stage (its representative device, named by rank and
        node), one track for its kernels, one for its sends, idle time as bubble slices."""
        ev: list[dict] = []
        us = 1e6
        lay = self.layout
        for s, res in enumerate(self.stages):
            rank = lay.stage_rank(s)
            pid = s
            ev.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_name",
                       "args": {"name": f"stage {s}: device {rank} (node {lay.node_of(rank)}, tp {lay.tp} ep {lay.ep})"}})
            ev.append({"ph": "M", "pid": pid, "tid": 1, "name": "thread_name", "args": {"name": "kernels"}})
            ev.append({"ph": "M", "pid": pid, "tid": 2, "name": "thread_name", "args": {"name": "send"}})
            ev.append({"ph": "M", "pid": pid, "tid": 3, "name": "thread_name", "args": {"name": "pipeline bubble"}})
            df = res.ops
            keep = ~((df["kind"] == "view") & (df["end_s"] <= df["start_s"]))
            names, kinds = df["name"][keep].tolist(), df["kind"][keep].tolist()
            st, en = df["start_s"][keep].to_numpy(), df["end_s"][keep].to_numpy()
            prev = 0.0
            for m in range(self.start.shape[1]):
                t0 = float(self.start[s, m])
                if t0 > prev + 1e-12:
                    ev.append({"ph": "X", "pid": pid, "tid": 3, "name": "bubble", "cat": "bubble",
                               "ts": prev * us, "dur": (t0 - prev) * us})
                for nm, kd, a, b in zip(names, kinds, st, en, strict=True):
                    ev.append({"ph": "X", "pid": pid, "tid": 1, "name": nm, "cat": kd, "ts": (t0 + a) * us,
                               "dur": (b - a) * us, "args": {"microbatch": m}})
                prev = float(self.end[s, m])
                if s < len(self.stages) - 1:
                    ev.append({"ph": "X", "pid": pid, "tid": 2, "name": f"send mb {m} ({LEVELS[lay.p2p_level(s)]})",
                               "cat": "p2p", "ts": prev * us, "dur": self.send_s[s] * us,
                               "args": {"bytes": self.send_bytes}})
            step = self.step_time_s
            if step > prev + 1e-12:
                ev.append({"ph": "X", "pid": pid, "tid": 3, "name": "bubble", "cat": "bubble",
                           "ts": prev * us, "dur": (step - prev) * us})
        return ev


def simulate_scaled(graph, system, *, tp: int = 1, pp: int = 1, ep: int = 1, nodes: int | None = None,
                    microbatches: int | None = None, imbalance: float | None = None, launch: str = "eager",
                    placement=None, engine: str = "auto", batch: int | None = None) -> ScaledResult:
    """Simulate one step of ``graph`` (one micro-batch of one EP rank's sequences, unsharded)
    over the layout; ``batch``: the whole step's sequences (for tokens/s; default
    ``graph batch x M x ep``)."""
    from hw_models.catalog import load
    from workloads.expert_parallel import check_degree as check_ep
    from workloads.expert_parallel import expert_shard
    from workloads.tensor_parallel import check_degree as check_tp
    from workloads.tensor_parallel import shard

    from . import collective_mode, gc_paused, simulate
    from .placement import Placement

    system = load(system)
    if nodes is not None:
        system = with_nodes(system, nodes)
    cfg = graph.meta.get("config") or {}
    layers = int(cfg.get("num_layers") or 0)
    lay = layout(system, tp, pp, ep, layers or None)
    M = int(microbatches) if microbatches else lay.pp
    if M < 1:
        raise ScaleOutError(f"--microbatches must be >= 1, got {microbatches}")
    imb = default_imbalance() if imbalance is None else float(imbalance)
    check_tp(graph, lay.tp)
    check_ep(graph, lay.ep)
    if lay.pp > 1 and not layers:
        raise ScaleOutError("--pp needs a decoder model with layers (an LLM from the zoo or a config.json)")
    if lay.tp > 1 or lay.ep > 1:
        if system.interconnect is None:
            raise ScaleOutError(f"system {system.id!r} has no interconnect for tensor or expert parallelism")
    placement = (placement if placement is not None else Placement()).validate(system)
    with gc_paused():
        g = shard(graph, lay.tp) if lay.tp > 1 else graph
        g = expert_shard(g, lay.ep, imb) if lay.ep > 1 else g
        for op in g.ops:
            if op.kind == "collective":
                collective_mode(op, g.meta, launch)
        if lay.pp > 1:
            per, head, tail, where = layer_times(g, system, placement, lay)
            idx = sorted(per)
            starts = balance([per[k] for k in idx], lay.pp, head, tail)
            starts = [idx[0] + s for s in starts]
            stages = stage_graphs(g, where, starts, idx[-1] + 1)
        else:
            starts = [0]
            g.meta["layers"] = (0, layers)
            stages = [g]
        fn = cost_fn(lay)
        results = [simulate(sg, system, launch=launch, tp=1, placement=placement, engine=engine, cost_fn=fn)
                   for sg in stages]
    for r in results:
        r.meta["tp"] = lay.tp
    stage_s = [r.step_time_s for r in results]
    tokens = int(graph.meta.get("batch") or 1) * (int(graph.meta.get("prompt") or 1)
                                                  if graph.meta.get("phase") == "prefill" else 1)
    hidden = int(cfg.get("hidden") or 0)
    send_bytes = float(tokens * hidden * activation_bytes())
    send_s = [link_time(lay.p2p_level(s), send_bytes, system) for s in range(lay.pp - 1)]
    start, end = schedule(stage_s, send_s, M)
    step = float(end[-1, -1])
    tbbs = []
    for s, r in enumerate(results):
        d = {k: v * M for k, v in r.time_by_bound.items()}
        idle = step - M * stage_s[s]
        if idle > 1e-15:
            d["pipeline_bubble"] = idle
        tbbs.append(d)
    tbb: dict[str, float] = {}
    for d in tbbs:
        for k, v in d.items():
            tbb[k] = tbb.get(k, 0.0) + v / len(tbbs)
    mem = stage_memory(stages, g, lay.tp, max(layers, 1))
    cap = float(system.device.main_memory.capacity.value)
    links = _links(results, stages, lay, M, send_bytes, send_s)
    b_step = int(batch) if batch else int(graph.meta.get("batch") or 1) * M * lay.ep
    steady = max(M * max(stage_s), sum(stage_s) + sum(send_s))
    per_seq = (int(graph.meta.get("prompt") or 1) if graph.meta.get("phase") == "prefill" else 1)
    totals = {
        "step_time_s": step,
        "steady_step_s": steady,
        "bubble_share": float(np.mean([d.get("pipeline_bubble", 0.0) for d in tbbs]) / step) if step else 0.0,
        "microbatch_s": stage_s,
        "flops": float(sum(r.totals["flops"] for r in results) * M * lay.ep),
        "bytes": float(sum(r.totals["bytes"] for r in results) * M * lay.ep),
        "memory_floor_s": float(sum(r.totals["memory_floor_s"] for r in results) * M),
        "compute_floor_s": float(sum(r.totals["compute_floor_s"] for r in results) * M),
        "host_time_s": float(max(r.totals["host_time_s"] for r in results) * M),
        "device_busy_s": float(max(r.totals["device_busy_s"] for r in results) * M),
        "kernels": int(sum(r.totals["kernels"] for r in results)),
        "tokens_per_s": float(b_step * per_seq / step) if step else None,
        "steady_tokens_per_s": float(b_step * per_seq / steady) if steady else None,
        "devices": lay.world,
        "unknown_ops": int(sum(r.totals["unknown_ops"] for r in results)),
        "engine": results[0].totals["engine"],
        "placement": results[0].totals["placement"],
    }
    meta = {**results[0].meta, "tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "nodes": system.nodes,
            "devices_per_node": system.num_devices, "microbatches": M, "batch": b_step,
            "microbatch": int(graph.meta.get("batch") or 1), "ep_imbalance": imb if lay.ep > 1 else None,
            "layers_total": layers if lay.pp > 1 else (layers or 0)}
    if lay.pp == 1:
        meta["layers_total"] = layers
    return ScaledResult(meta, lay, results, starts, stage_s, send_s, send_bytes, start, end, mem, cap,
                        totals, tbb, tbbs, links)


def _links(results, stages, lay: Layout, M: int, send_bytes: float, send_s: list[float]) -> dict[str, dict[str, float]]:
    """Per link level: bytes one device moves on it and the seconds its collectives and
    sends spend there over the step (the stage whose device spends the most)."""
    out = {lv: {"bytes": 0.0, "seconds": 0.0} for lv in LEVELS.values()}
    for s, (r, sg) in enumerate(zip(results, stages, strict=True)):
        acc = {lv: [0.0, 0.0] for lv in LEVELS.values()}
        dur = r.ops["duration_s"].to_numpy()
        for i, op in enumerate(sg.ops):
            if op.kind != "collective":
                continue
            lv_info = op.attrs.get("levels")
            if lv_info:
                for k, (b, t) in lv_info.items():
                    acc[LEVELS[k]][0] += b
                    acc[LEVELS[k]][1] += t
            else:
                # the kind and message the cost model priced (the record's fills)
                c = payload(op)
                traffic, _ = physics.collective_terms(c.kind, c.n_ranks, "ring")
                acc[LEVELS["interconnect"]][0] += traffic * float(c.bytes)
                acc[LEVELS["interconnect"]][1] += float(dur[i])
        if s < len(results) - 1:
            lv = LEVELS[lay.p2p_level(s)]
            acc[lv][0] += send_bytes
            acc[lv][1] += send_s[s]
        for lv, (b, t) in acc.items():
            if t * M > out[lv]["seconds"]:
                out[lv] = {"bytes": b * M, "seconds": t * M}
    return out
