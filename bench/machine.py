"""Machine description for bench/results/*.json: date, CPU model, cores, load, versions."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch


def machine_info() -> dict:
    """Date, CPU model (from /proc/cpuinfo), visible cores, load average, memory, versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20  # MemTotal kB -> GiB
    except (OSError, ValueError, IndexError):
        mem = float("nan")
    try:
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = []
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
           else "none lent in this task (CPU only)")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu, "cores_visible": os.cpu_count(), "memory_GiB": round(mem, 1),
        "load_avg_1_5_15": load, "torch": torch.__version__,
        "python": platform.python_version(), "gpu": gpu,
    }
