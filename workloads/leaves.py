"""Leaf-module rules: blocks whose forward is data-dependent are not run; one op stands
for them, costed by the statistical expectation, with a meta output of the right shape.

Mixture of experts (transformers 5.x ``MixtralSparseMoeBlock``, ``OlmoeSparseMoeBlock``:
a ``gate`` router with ``weight [E, H]`` and ``top_k``, and ``experts`` holding
``gate_up_proj [E, 2I, H]`` and ``down_proj [E, H, I]``): for T tokens each routed to k of
E experts uniformly, the step reads E·(1−(1−k/E)^T) experts' weights on average.
``Qwen3MoeSparseMoeBlock`` has the same layout. ``DeepseekV3MoE`` adds a dense
``shared_experts`` MLP that every token runs: it is traced as ordinary ops after the
routed experts' one op, and their outputs added, as the module's forward does.
"""

from __future__ import annotations

from typing import Any

import torch

from . import rules
from .op import Access
from .payloads import Moe


def moe_work(tokens: int, num_experts: int, top_k: int, hidden: int, expert_numels: list[int]) -> dict[str, float]:
    """What a mixture-of-experts block costs in expectation: ``tokens`` routed to ``top_k`` of
    ``num_experts`` experts whose weight tensors hold ``expert_numels`` elements each per
    expert (gate-up first). Returns the distinct experts hit (``expected_experts``), the
    experts' and router's FLOPs (``flops``, ``router_flops``) and the weight elements read
    per tensor (``elements``: one entry per ``expert_numels``)."""
    unique = rules.expected_unique_experts(num_experts, top_k, tokens)
    expert_flops = sum(2.0 * n for n in expert_numels)  # 2 FLOPs per weight element per token
    router_flops = 2.0 * tokens * hidden * num_experts
    act_flops = 5.0 * tokens * top_k * expert_numels[0] / hidden / 2  # silu (4) and the product (1)
    return {"expected_experts": unique, "router_flops": router_flops,
            "flops": tokens * top_k * expert_flops + router_flops + act_flops,
            "elements": [unique * n for n in expert_numels]}


def moe_block(tracer: Any, mod: torch.nn.Module, hidden_states: torch.Tensor, *a: Any, **kw: Any) -> torch.Tensor:
    gate_w = mod.gate.weight
    experts = mod.experts
    num_experts = int(gate_w.shape[0])
    top_k = int(getattr(mod.gate, "top_k", getattr(mod, "top_k", 1)))
    hidden = int(hidden_states.shape[-1])
    tokens = hidden_states.numel() // hidden
    gate_up, down = experts.gate_up_proj, experts.down_proj
    work = moe_work(tokens, num_experts, top_k, hidden, [gate_up[0].numel(), down[0].numel()])
    kind = "moe"
    reads = [tracer.read(hidden_states), tracer.read(gate_w, "gemv" if tokens == 1 else "matmul")]
    for w, elems in zip((gate_up, down), work["elements"], strict=True):
        per_elem = tracer.policy.weight_bytes if tracer.policy.weight_bytes is not None else w.element_size()
        reads.append(Access(tracer.name(w), int(round(elems * per_elem)), "weight"))
    tracer.suppress += 1
    try:
        out = torch.empty_like(hidden_states)
    finally:
        tracer.suppress -= 1
    label = tracer.flops_label(kind, hidden_states.dtype)
    tracer.emit(
        f"moe::{type(mod).__name__}", kind,
        flops={label: work["flops"]},
        reads=reads, writes=[tracer.write(out)], dtype=label,
        shapes=[list(hidden_states.shape), list(out.shape)],
        attrs=Moe(tokens=tokens, num_experts=num_experts, top_k=top_k, expected_experts=work["expected_experts"],
                  hidden=hidden, intermediate=int(down.shape[-1]), router_flops=work["router_flops"]).attrs(),
    )
    return out


def moe_with_shared(tracer: Any, mod: torch.nn.Module, hidden_states: torch.Tensor, *a: Any, **kw: Any) -> torch.Tensor:
    routed = moe_block(tracer, mod, hidden_states)
    return routed + mod.shared_experts(hidden_states)


#: module class name -> rule(tracer, module, *forward args) -> output
LEAF_RULES: dict[str, Any] = {
    "MixtralSparseMoeBlock": moe_block,
    "OlmoeSparseMoeBlock": moe_block,
    "Qwen3MoeSparseMoeBlock": moe_block,
    "DeepseekV3MoE": moe_with_shared,
}


def register_leaf_rule(class_name: str, rule: Any) -> None:
    """Trace every module of class ``class_name`` as ``rule(tracer, module, *args)``."""
    LEAF_RULES[class_name] = rule
