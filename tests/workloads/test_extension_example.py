"""The worked example of docs/architecture.md, "Extension points", step by step: a new
activation kernel is one new module (``tests/workloads/squared_relu.py``) and one
registration, and then traces, prices and simulates like any built-in op."""

from __future__ import annotations

import pytest
import squared_relu
import torch

from hw_models.catalog import load
from simulator import simulate
from simulator.costmodel import graph_costs
from workloads import kinds
from workloads.fusion import FUSIBLE
from workloads.op import KINDS, MATRIX_KINDS, Op
from workloads.rules import RULES, Rule, register_rule
from workloads.tracer import trace

ROWS, COLS = 4096, 8192


@pytest.fixture
def registered():
    squared_relu.register()
    yield
    RULES.pop("squared_relu")  # other tests see the rule table as shipped


class MLPAct(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.roofsim_example.squared_relu(x)


def _graph():
    x = torch.empty(ROWS, COLS, device="meta", dtype=torch.bfloat16)
    return trace(MLPAct().to("meta"), x)


def test_a_registered_activation_traces_prices_and_simulates(registered):
    (op,) = _graph().ops
    assert (op.kind, op.unknown) == ("elementwise", False)
    assert op.flops == {"bf16": 2.0 * ROWS * COLS}  # two FLOPs per element, as registered
    assert (op.bytes_read, op.bytes_written) == (2 * ROWS * COLS, 2 * ROWS * COLS)  # bf16 in, bf16 out

    gpu = load("h100-sxm")
    row = simulate(_graph(), gpu).to_pandas().iloc[0]
    assert row["kind"] == "elementwise" and row["bound"] == "memory:hbm"
    # memory-bound: its roofline is its bytes at the HBM's peak, and no kernel beats it
    assert row["roofline_s"] == pytest.approx(op.bytes / gpu.device.main_memory.bandwidth.value)
    assert row["duration_s"] >= row["roofline_s"]
    (cost,) = graph_costs(_graph(), gpu)
    assert cost.time_s == pytest.approx(row["duration_s"]) and cost.flops == op.total_flops


def test_without_the_registration_it_is_flagged_unknown():
    (op,) = _graph().ops
    assert op.unknown and op.attrs["reason"] == "no cost rule"


def test_a_registered_kind_joins_its_kind_sets_prices_and_leaves():
    kinds.register_kind(kinds.OpKind("activation", fusible=True, formula="pointwise"))
    register_rule("squared_relu", Rule("activation", per_elem=2))
    try:
        assert "activation" in KINDS and "activation" in FUSIBLE and "activation" not in MATRIX_KINDS
        (op,) = _graph().ops
        assert (op.kind, op.total_flops) == ("activation", 2.0 * ROWS * COLS)
        row = simulate(_graph(), "h100-sxm").to_pandas().iloc[0]
        assert row["term"] == "memory" and row["duration_s"] >= row["roofline_s"] > 0
    finally:
        RULES.pop("squared_relu")
        kinds.unregister_kind("activation")
    assert "activation" not in KINDS and "activation" not in FUSIBLE
    with pytest.raises(ValueError):
        Op(0, "x", "activation", "bf16")
