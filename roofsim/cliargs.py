"""Options every command that builds one model step shares, so they read the same everywhere."""

from __future__ import annotations

import argparse


def add_step_args(p: argparse.ArgumentParser) -> None:
    """--phase, --batch, --context, --prompt, --dtype as ``workloads.build`` takes them."""
    p.add_argument("--phase", choices=("prefill", "decode"), default="decode")
    p.add_argument("--batch", type=int, default=1, help="sequences (or images) per step")
    p.add_argument("--context", type=int, default=2048, help="decode: tokens already in the KV cache")
    p.add_argument("--prompt", type=int, default=512, help="prefill: prompt tokens")
    p.add_argument("--dtype", default="bf16", help="fp32, bf16, fp16, fp8, int8 or int4 (weight-only)")
