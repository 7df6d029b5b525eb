"""Options every command that builds one model step shares, and the checks on them, so they
read the same everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from roofsim.errors import UserError

#: what --phase, --batch, --context, --prompt and --dtype are when not given
STEP_DEFAULTS = {"phase": "decode", "batch": 1, "context": 2048, "prompt": 512, "dtype": "bf16"}
#: the flags that set a precision (any of them counts as setting the step's dtype)
PRECISION_FLAGS = ("precision", "weights", "activations", "kv_cache", "group_size", "quant_kernel")


def fusion_policies():
    """The ``--fusion`` choices: the fusion registry itself (``workloads.fusion.POLICIES``),
    so a policy added with ``register_policy`` before the arguments are parsed is accepted."""
    from workloads.fusion import POLICIES

    return POLICIES


def add_format_arg(p: argparse.ArgumentParser) -> None:
    """--format table|json: a table for people, the same numbers as JSON for scripts."""
    p.add_argument("--format", choices=("table", "json"), default="table")


def add_command_group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command made of subcommands (``roofsim NAME list|show|...``); one must be given.
    The chosen one is ``args.NAME_command``."""
    p = subparsers.add_parser(name, help=help)
    return p.add_subparsers(dest=f"{name}_command", required=True, parser_class=type(p))


def add_subcommand(group: argparse._SubParsersAction, name: str, help: str, func: Callable, *,
                   formats: bool = True) -> argparse.ArgumentParser:
    """One subcommand of an ``add_command_group`` group, run by ``func(args)``; with
    ``formats``, its output is a table or JSON (``add_format_arg``)."""
    p = group.add_parser(name, help=help)
    if formats:
        add_format_arg(p)
    p.set_defaults(func=func)
    return p


def add_precision_args(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    """--precision (and its older name --dtype), --weights, --activations, --kv-cache,
    --group-size and --quant-kernel (``workloads.precision``, ``workloads.quantkernels``)."""
    if dtype:
        p.add_argument("--dtype", default=None, help="the same as --precision (kept for older scripts)")
    p.add_argument("--precision", default=None, metavar="SPEC",
                   help="fp32, bf16, fp16, fp8, int8 or int4 (weight-only), or w<bits>a<bits>[kv<bits>][g<group>] "
                        "such as w4a16kv8; default bf16")
    p.add_argument("--weights", default=None, metavar="FORMAT", help="weight format: bf16, fp16, fp32, fp8, int8, "
                   "int4, nf4 (or bits: 4, 8, 16); overrides --precision")
    p.add_argument("--activations", default=None, metavar="FORMAT",
                   help="activation (matrix input) format: bf16, fp16, fp32, fp8, int8 (or bits: 8, 16)")
    p.add_argument("--kv-cache", default=None, metavar="FORMAT",
                   help="KV-cache format: bf16, fp16, fp32, fp8, int8, int4 (or bits: 4, 8, 16)")
    p.add_argument("--group-size", type=int, default=None, metavar="N",
                   help="weights per scale of group-wise int4/int8 weights (0: one group per output channel); "
                        "default: the kernel's")
    p.add_argument("--quant-kernel", default=None, metavar="NAME",
                   help="quantised kernel family: fused (default for int weights), marlin, exllama, bnb-nf4, "
                        "dequant-gemm, fp8-gemm, int8-gemm (workloads/quant_kernels.yaml)")


def add_step_args(p: argparse.ArgumentParser) -> None:
    """--phase, --batch, --context, --prompt, the precision flags, --fusion, as
    ``workloads.build`` takes them.

    They parse to ``None`` when not given; ``fill_step_args`` fills the defaults in and
    records which ones the user set, so a model without phases (a vision model, a
    ``pkg.mod:fn``) can refuse ``--phase decode --context 999`` instead of ignoring it.
    """
    p.add_argument("--phase", choices=("prefill", "decode"), default=None, help="default decode")
    p.add_argument("--batch", type=int, default=None, help="sequences (or images) per step (default 1)")
    p.add_argument("--context", type=int, default=None, help="decode: tokens already in the KV cache (default 2048)")
    p.add_argument("--prompt", type=int, default=None, help="prefill: prompt tokens (default 512)")
    add_precision_args(p)
    p.add_argument("--fusion", choices=fusion_policies(), default="none",
                   help="which kernels run: none (eager PyTorch, default), compile (torch.compile), serving "
                        "(vLLM/TensorRT-LLM-style fused kernels), gpt-fast (gpt-fast/torchao's own model, compiled)")


def resolve_precision(args: argparse.Namespace) -> bool:
    """Fold --dtype/--precision and the per-class flags into ``args.dtype``, the precision's
    one-string spelling (``workloads.precision``) that ``workloads.build`` parses; returns
    whether any was given. Bad values are one line naming the flag."""
    from workloads.precision import resolve
    from workloads.quantkernels import family

    dtype, spec = getattr(args, "dtype", None), getattr(args, "precision", None)
    if dtype is not None and spec is not None and dtype != spec:
        raise UserError(f"--dtype {dtype} and --precision {spec} disagree; give one of them")
    given = any(getattr(args, k, None) is not None for k in PRECISION_FLAGS) or dtype is not None
    kernel = getattr(args, "quant_kernel", None)
    if kernel is not None:
        family(kernel)  # an unknown family is refused by name before anything is built
    p = resolve(spec or dtype or STEP_DEFAULTS["dtype"], weights=getattr(args, "weights", None),
                activations=getattr(args, "activations", None), kv_cache=getattr(args, "kv_cache", None),
                group_size=getattr(args, "group_size", None), kernel=kernel)
    args.dtype = str(p)
    return given


def fill_step_args(args: argparse.Namespace) -> set[str]:
    """Fill the step options the user left out with ``STEP_DEFAULTS``; returns those given."""
    given = {k for k in STEP_DEFAULTS if k != "dtype" and getattr(args, k, None) is not None}
    if resolve_precision(args):
        given.add("dtype")
    for k, v in STEP_DEFAULTS.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.step_given = given
    return given


def require_positive(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """A one-line error for the first integer option of ``names`` below 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")


def resident_step(args: argparse.Namespace, system, placement, given: set[str], build: Callable):
    """The whole step graph the step options ask for, by ``build`` (``workloads.build``'s
    signature); refused in one line when ``--tp`` exceeds the system's devices or does not
    divide the model, or when one device's share cannot be resident under ``placement``
    (a step that does not fit is never priced as if it did)."""
    if args.tp > system.num_devices:
        raise UserError(f"--tp {args.tp} exceeds the {system.num_devices} device(s) of system {system.id!r}")
    graph = build(args.model, phase=args.phase, batch=args.batch, context=args.context, prompt=args.prompt,
                  dtype=args.dtype, given=given, fusion=args.fusion)
    from simulator.footprint import check_fits
    from workloads.tensor_parallel import check_degree

    check_degree(graph, args.tp)
    check_fits(graph, system, placement, args.tp)
    return graph
