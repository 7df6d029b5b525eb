"""Options every command that builds one model step shares, so they read the same everywhere."""

from __future__ import annotations

import argparse

#: what --phase, --batch, --context, --prompt and --dtype are when not given
STEP_DEFAULTS = {"phase": "decode", "batch": 1, "context": 2048, "prompt": 512, "dtype": "bf16"}


def add_step_args(p: argparse.ArgumentParser) -> None:
    """--phase, --batch, --context, --prompt, --dtype as ``workloads.build`` takes them.

    They parse to ``None`` when not given; ``fill_step_args`` fills the defaults in and
    records which ones the user set, so a model without phases (a vision model, a
    ``pkg.mod:fn``) can refuse ``--phase decode --context 999`` instead of ignoring it.
    """
    p.add_argument("--phase", choices=("prefill", "decode"), default=None, help="default decode")
    p.add_argument("--batch", type=int, default=None, help="sequences (or images) per step (default 1)")
    p.add_argument("--context", type=int, default=None, help="decode: tokens already in the KV cache (default 2048)")
    p.add_argument("--prompt", type=int, default=None, help="prefill: prompt tokens (default 512)")
    p.add_argument("--dtype", default=None, help="fp32, bf16, fp16, fp8, int8 or int4 (weight-only); default bf16")
    p.add_argument("--fusion", choices=("none", "compile", "serving"), default="none",
                   help="which kernels run: none (eager PyTorch, default), compile (torch.compile), serving "
                        "(vLLM/TensorRT-LLM-style fused kernels)")


def fill_step_args(args: argparse.Namespace) -> set[str]:
    """Fill the step options the user left out with ``STEP_DEFAULTS``; returns those given."""
    given = {k for k in STEP_DEFAULTS if getattr(args, k, None) is not None}
    for k, v in STEP_DEFAULTS.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.step_given = given
    return given
