"""Serving with pipeline stages and expert-parallel ranks (``roofsim serve --pp --ep``).

A pipeline of ``S`` stages serves as ``S`` engines (vLLM's virtual engines: one batch in
flight per stage). Each engine's step passes through every stage in turn, so its time is
the whole model's step on one tensor-parallel group plus the ``S - 1`` activation sends
between stages (NVLink, or the network where neighbouring stages sit on different
nodes). With balanced stages the ``S`` engines together keep every stage busy without
over-subscribing it: in one engine's step each stage serves each engine once. Each device
holds ``1/S`` of the weights and, for every engine, ``1/S`` of the layers' KV cache, so an
engine's KV capacity is the device's memory less ``1/S`` of the weights, over the whole
model's KV bytes per token.

Expert parallelism over ``E`` ranks runs attention data-parallel: each rank is an engine
with its own scheduler and sequences; its MoE layers hold ``ceil(experts / E)`` experts and
add the dispatch and combine all-to-alls (``workloads.expert_parallel``, with the load
imbalance of ``simulator/scaleout.yaml``), assuming the other ranks carry as many tokens.
The engines are simulated as independent replicas behind the router: the ranks' lockstep
at every MoE layer is not modelled.
"""

from __future__ import annotations

import math
from typing import Any

from simulator.stepmodel import Memory, StepModel, StepModelError
from workloads.payloads import payload


class ScaledStepModel(StepModel):
    """Step times of one engine of a TP x EP x PP layout (module doc)."""

    def __init__(self, model: str, system: Any, *, tp: int = 1, pp: int = 1, ep: int = 1, nodes: int = 1,
                 imbalance: float | None = None, **kw: Any) -> None:
        from hw_models.catalog import load
        from simulator.layout import layout, with_nodes
        from simulator.scaleout import activation_bytes, default_imbalance

        sysn = with_nodes(load(system), nodes)
        self.pp, self.ep = int(pp), int(ep)
        self.imbalance = default_imbalance() if imbalance is None else float(imbalance)
        simulate_fn = self._ep_simulate if self.ep > 1 else None
        # the disk cache is keyed without the layout: these values stay in memory
        super().__init__(model, sysn, tp=tp, simulate_fn=simulate_fn, cache_dir=False, **kw)
        self.lay = layout(sysn, tp, pp, ep, self.layers)
        self._hidden = int(self.info["hidden"])
        self._act = activation_bytes()
        self._moe_graph = self._probe
        if self.ep > 1:
            from workloads.expert_parallel import check_degree
            from workloads.truncated import llm_config
            from workloads.zoo import _first_alike

            first = _first_alike(llm_config(model)[0]) or 0
            if first:  # dense layers come first (DeepSeek-V3): probe down to the first MoE layer
                self._moe_graph = self._graph(min(self.layers, first + 1), "decode", batch=1, context=1)
            check_degree(self._moe_graph, self.ep)

    def _ep_simulate(self, graph, system, *, launch: str, tp: int):
        from simulator import simulate
        from workloads.expert_parallel import expert_shard

        return simulate(expert_shard(graph, self.ep, self.imbalance), system, launch=launch, tp=tp)

    def _sends(self, tokens: int) -> float:
        from simulator.layout import link_time

        nbytes = float(tokens * self._hidden * self._act)
        return sum(link_time(self.lay.p2p_level(s), nbytes, self.system) for s in range(self.pp - 1))

    def step(self, chunks=(), decode_batch: int = 0, decode_context: float = 0.0) -> float:
        t = super().step(chunks, decode_batch, decode_context)
        if self.pp == 1 or t == 0.0:
            return t
        return t + self._sends(sum(c for c, _ in chunks) + decode_batch)

    def memory(self, max_batched_tokens: int = 8192, utilization: float = 0.9) -> Memory:
        m = super().memory(max_batched_tokens, utilization)
        w = m.weights
        if self.ep > 1:
            w -= self._expert_bytes() / self.tp * (1.0 - self._held() / self._experts())
        return Memory(m.capacity, m.usable, w / self.pp, m.activations, m.kv_per_token)

    def _moe(self):
        moe = [op for op in self._moe_graph.ops if op.kind == "moe"]
        if not moe:
            raise StepModelError(f"--ep {self.ep}: {self.model} has no mixture-of-experts layers")
        return moe[0]

    def _experts(self) -> int:
        return int(payload(self._moe()).num_experts)

    def _held(self) -> int:
        return -(-self._experts() // self.ep)

    def _expert_bytes(self) -> float:
        """Bytes of every routed expert of the whole model (all MoE layers)."""
        op = self._moe()
        m = payload(op)
        per_layer = sum(x.bytes for x in op.reads if "experts" in x.tensor) * m.num_experts / m.expected_experts
        from workloads.truncated import llm_config
        from workloads.zoo import _first_alike

        moe_layers = self.layers - (_first_alike(llm_config(self.model)[0]) or 0)
        return float(per_layer) * moe_layers


def engines(replicas: int, pp: int, ep: int) -> int:
    """Engines behind the router: every pipeline runs one per stage, every EP rank is one."""
    return int(replicas) * int(pp) * int(ep)


def check(tp: int, pp: int, ep: int) -> None:
    for flag, v in (("--tp", tp), ("--pp", pp), ("--ep", ep)):
        if not isinstance(v, int) or v < 1 or not math.isfinite(v):
            raise StepModelError(f"{flag} must be a whole number >= 1, got {v!r}")
