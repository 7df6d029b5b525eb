"""A fused squared-ReLU kernel, ``relu(x) ** 2`` in one pass (Primer's activation): the
worked example of docs/architecture.md, "Extension points"."""

import torch

from workloads.rules import Rule, register_rule


@torch.library.custom_op("roofsim_example::squared_relu", mutates_args=())
def squared_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x).square()


@squared_relu.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)  # shapes only: what tracing on meta tensors runs


def register() -> None:
    # a compare and a multiply per element; its kind's formula (pointwise) counts them
    register_rule("squared_relu", Rule("elementwise", per_elem=2))
