"""What the measurements came from: device, CPU, cores, driver, library versions, clocks."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


def _cpuinfo() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu_model": platform.processor() or platform.machine()}
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = (s.strip() for s in line.split(":", 1))
        if k == "model name" and "cpu_model" not in out:
            out["cpu_model"] = v
        elif k == "cpu MHz" and "cpu_mhz" not in out:
            out["cpu_mhz"] = float(v)
        elif k == "flags" and "cpu_flags" not in out:
            keep = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
            out["cpu_flags"] = [f for f in v.split() if f in keep]
    return out


def cpu_caches() -> list[dict[str, Any]]:
    """Data/unified caches of cpu0 from sysfs: level, size in bytes, CPUs sharing it."""
    caches = []
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(root.glob("index*")):
        try:
            typ = (d / "type").read_text().strip()
            if typ == "Instruction":
                continue
            size = (d / "size").read_text().strip()
            mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(size[-1], 1)
            nbytes = int(size.rstrip("KMG")) * mult
            shared = (d / "shared_cpu_list").read_text().strip()
            caches.append({"level": int((d / "level").read_text()), "size": nbytes, "shared_cpu_list": shared})
        except (OSError, ValueError):
            continue
    return caches


def _cpus_in(cpu_list: str) -> int:
    n = 0
    for part in cpu_list.split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part:
            n += 1
    return n


def aggregate_caches(cores: int) -> dict[str, int]:
    """Total bytes per cache level over the cores in use (private caches add up)."""
    out: dict[str, int] = {}
    for c in cpu_caches():
        sharing = max(_cpus_in(c["shared_cpu_list"]), 1)
        instances = max(cores // sharing, 1)
        out[f"l{c['level']}"] = c["size"] * instances
    return out


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    fields = "name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.limit"
    try:
        r = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if r.returncode != 0 or not r.stdout.strip():
        return {}
    vals = [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(["gpu_" + f.replace(".", "_") for f in fields.split(",")], vals, strict=False))


def collect(device: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "device": device,
        "host": socket.gethostname(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "torch_threads": torch.get_num_threads(),
        "logical_cpus": os.cpu_count(),
        "cpu_caches": cpu_caches(),
        **_cpuinfo(),
    }
    try:
        meta["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        meta["usable_cpus"] = os.cpu_count()
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        meta.update(
            device_name=props.name,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            sm_count=props.multi_processor_count,
            gpu_memory_bytes=props.total_memory,
            compute_capability=f"{props.major}.{props.minor}",
            **_nvidia_smi(),
        )
    else:
        meta["device_name"] = meta.get("cpu_model", platform.machine())
    return meta
