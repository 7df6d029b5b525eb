"""A starting ``SystemSpec`` for the machine calibration runs on.

For the CPU: a one-socket system whose cores and cache sizes are read from this machine
(sysfs / ``/proc``), each such number sourced ``measured: <where> on <host>``; bandwidths
and peaks start as estimates from the clock and ISA and are replaced by the fit. For a
GPU: the catalog system whose name matches the device (or ``--base``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hw_models.catalog import SpecError, load, resolve
from hw_models.spec import SystemSpec
from validation.harness import sysinfo

#: catalog ids for GPUs, matched against torch's device name (the longest key found in the
#: name wins, so "NVIDIA H100 PCIe" is h100-pcie, not h100-sxm, and "NVIDIA L40" is not l4)
GPU_BASES = {
    "H100": "h100-sxm", "H100 PCIe": "h100-pcie", "H100 NVL": "h100-nvl", "H200": "h200", "GH200": "gh200",
    "B200": "b200", "A100": "a100-80gb", "A10G": "a10g", "NVIDIA A40": "a40", "L40S": "l40s", "L40": "l40",
    "L4": "l4", "RTX 4090": "rtx-4090", "MI300X": "mi300x",
}


def gpu_base_id(name: str) -> str | None:
    """The catalog id for a GPU named ``name`` (torch's device name), or None."""
    for key in sorted(GPU_BASES, key=len, reverse=True):
        if key in name:
            return GPU_BASES[key]
    return None


_UNIT = {"bytes": "B", "bandwidth": "B/s", "time": "s", "flop_rate": "FLOP/s", "rate": "/s", "count": ""}


def _q(value: float | str, source: str, dim: str = "count") -> dict[str, Any]:
    if isinstance(value, (int, float)) and dim != "count":
        value = f"{value:.9g} {_UNIT[dim]}"
    return {"value": value, "source": source}


def _mem_total() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_base(threads: int | None = None) -> SystemSpec:
    """This CPU as a SystemSpec: topology measured, rates estimated (calibration fits them)."""
    import torch

    host = socket.gethostname()
    info = sysinfo.collect("cpu")
    cores = int(threads or torch.get_num_threads())
    where = f"measured: /sys/devices/system/cpu/cpu0/cache on {host}"
    caches = sysinfo.aggregate_caches(cores)
    ghz = float(info.get("cpu_mhz") or 2000.0) / 1e3
    flags = set(info.get("cpu_flags", []))
    lanes = 16 if "avx512f" in flags else 8
    fp32_peak = cores * ghz * 1e9 * lanes * 2 * 2  # two FMA pipes, 2 FLOPs per FMA
    bf16_peak = fp32_peak * (2 if ("avx512_bf16" in flags or "amx_bf16" in flags) else 1)
    isa = f"{'AVX-512' if lanes == 16 else 'AVX2'} ({lanes} fp32 lanes), 2 FMA pipes, {cores} cores x {ghz:.2f} GHz"
    mem = _mem_total() or 16 * 2**30
    levels = []
    # per-cycle widths below are upper bounds of x86 cores (two 64 B loads per cycle from L1,
    # one 64 B line per cycle from L2, half that from L3): the fit may not exceed them
    per_cycle = {"l1": 128.0, "l2": 64.0, "l3": 32.0}
    lat = {"l1": 1.5e-9, "l2": 5e-9, "l3": 15e-9}
    for name in ("l1", "l2", "l3"):
        if name not in caches:
            continue
        bw = cores * per_cycle[name] * ghz * 1e9
        levels.append(
            {
                "name": name,
                "capacity": _q(caches[name], f"{where} (summed over {cores} cores in use)", "bytes"),
                "bandwidth": _q(bw, f"estimate: {per_cycle[name]:.0f} B/cycle/core x {cores} cores x {ghz:.2f} GHz", "bandwidth"),
                "latency": _q(lat[name], "estimate: typical x86 load-to-use latency", "time"),
                "efficiency": {"value": 0.5, "source": "estimate: starting point for calibration"},
                "persistent": {"value": True, "source": "a CPU core's caches serve the same thread's next op"},
            }
        )
    levels.append(
        {
            "name": "dram",
            "capacity": _q(mem, f"measured: /proc/meminfo MemTotal on {host}", "bytes"),
            "bandwidth": _q(40e9 * cores, "estimate: upper bound, one core streams at most about 40 GB/s from DRAM",
                            "bandwidth"),
            "latency": _q(100e-9, "estimate: typical DDR4/DDR5 load latency", "time"),
            "efficiency": {"value": 0.4, "source": "estimate: starting point for calibration"},
            "persistent": {"value": True, "source": "main memory holds every tensor between ops"},
        }
    )
    eff = {"value": 0.5, "source": "estimate: starting point for calibration"}
    doc = {
        "id": f"this-cpu-{host}",
        "name": f"{info.get('cpu_model', 'CPU')} ({cores} threads) on {host}",
        "description": "This machine's CPU as the device, built by roofsim calibrate.",
        "host": {
            "name": info.get("cpu_model", "CPU"),
            "cores": _q(cores, f"measured: torch.get_num_threads() on {host}"),
            "dispatch_overhead": _q("2 us", "estimate: PyTorch eager per-op CPU path"),
            "library_call": _q("1 us", "estimate: a oneDNN/MKL GEMM or SDPA call adds about a microsecond to the "
                                       "eager op path; starting point for calibration"),
            "graph_launch": _q("10 us", "estimate: no graph replay on a CPU device; unused"),
            "graph_node_cost": _q("1 us", "estimate: no graph replay on a CPU device; unused"),
            "memory_capacity": _q(mem, f"measured: /proc/meminfo MemTotal on {host}", "bytes"),
            "memory_bandwidth": levels[-1]["bandwidth"],
            "memory_latency": levels[-1]["latency"],
        },
        "device": {
            "name": info.get("cpu_model", "CPU"),
            "kind": "cpu",
            "compute_units": _q(cores, f"measured: torch.get_num_threads() on {host} (threads the kernels use)"),
            "tiles": {"shapes": [[1, 16], [16, 16]], "split_k": False,
                      "source": "estimate: CPU GEMM kernels block per core in small register tiles (wave quantisation "
                                "over cores stays mild); single rows run a matrix-vector kernel with no row padding"},
            "operand_level": "l2" if "l2" in caches else None,
            "overlap": {"value": 4, "source": "estimate: starting point for calibration"},
            "serial_dispatch": {"value": True, "source": "PyTorch eager on a CPU device runs each op to completion on the "
                                                         "calling thread before the next is dispatched"},
            "kernel_latency": _q(
                "0.2 us",
                "estimate: in-kernel setup of an ATen CPU op; not separable from dispatch in eager timings, "
                "so calibration fits dispatch_overhead as the remainder",
            ),
            "matrix": {
                "fp32": {"peak": _q(fp32_peak, f"estimate: {isa}", "flop_rate"), "efficiency": eff},
                "bf16": {"peak": _q(bf16_peak, f"estimate: {isa}; bf16 computed in fp32 without AVX512-BF16/AMX",
                                   "flop_rate"),
                         "efficiency": eff},
            },
            "vector": {
                "fp32": {"peak": _q(fp32_peak, f"estimate: {isa}", "flop_rate"), "efficiency": eff},
                "bf16": {"peak": _q(bf16_peak, f"estimate: {isa}", "flop_rate"), "efficiency": eff},
            },
            "memory": levels,
            "atomics": {
                "update_rate": _q("1 G/s", "estimate: starting point for calibration"),
                "same_address_rate": _q("0.5 G/s", "estimate: starting point for calibration"),
            },
        },
    }
    return resolve(doc, "<this machine>")


def base_spec(device: str, base: str | None = None, threads: int | None = None) -> SystemSpec:
    if base:
        return load(base)
    if device == "cpu":
        return cpu_base(threads)
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    sid = gpu_base_id(name)
    if sid is not None:
        return load(sid)
    raise SpecError(f"no catalog system matches GPU {name!r}; pass --base <catalog id or YAML>")
