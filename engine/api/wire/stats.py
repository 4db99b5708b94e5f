"""`GET /containers/{id}/stats` in Docker's shape, from two samples (now and before)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.api.wire.containers import rfc3339
from engine.containers.stats import Sample

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _time(ns: int) -> str:
    return rfc3339(dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)) if ns else _ZERO_TIME


def _cpu(s: Sample | None) -> dict[str, Any]:
    if s is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    usage: dict[str, Any] = {"total_usage": s.cpu_total_ns,
                             "usage_in_kernelmode": s.cpu_kernel_ns,
                             "usage_in_usermode": s.cpu_user_ns}
    if s.percpu_ns:
        usage["percpu_usage"] = list(s.percpu_ns)
    return {"cpu_usage": usage, "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_json(name: str, container_id: str, now: Sample, before: Sample | None) -> dict[str, Any]:
    memory: dict[str, Any] = {"usage": now.memory_usage, "stats": dict(now.memory_stats),
                              "limit": now.memory_limit}
    if now.memory_max_usage:
        memory["max_usage"] = now.memory_max_usage
    return {
        "read": _time(now.read_ns),
        "preread": _time(before.read_ns if before else 0),
        "pids_stats": {"current": now.pids_current, **({"limit": now.pids_limit}
                                                       if now.pids_limit else {})},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": now.io_read_bytes},
                {"major": 0, "minor": 0, "op": "write", "value": now.io_write_bytes},
            ],
            "io_serviced_recursive": None, "io_queue_recursive": None,
            "io_service_time_recursive": None, "io_wait_time_recursive": None,
            "io_merged_recursive": None, "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(now),
        "precpu_stats": _cpu(before),
        "memory_stats": memory,
        "name": "/" + name,
        "id": container_id,
        "networks": {k: {"rx_bytes": v.rx_bytes, "rx_packets": v.rx_packets,
                         "rx_errors": v.rx_errors, "rx_dropped": v.rx_dropped,
                         "tx_bytes": v.tx_bytes, "tx_packets": v.tx_packets,
                         "tx_errors": v.tx_errors, "tx_dropped": v.tx_dropped}
                     for k, v in now.networks.items()},
    }


__all__ = ["stats_json"]
