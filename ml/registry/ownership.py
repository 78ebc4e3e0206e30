"""Which process owns an MLflow run: a run left open by a killed task is found and failed, never one still running."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from ml.registry.tracking import client


def _first_line(*paths: str) -> str:
    for path in paths:
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def _machine() -> str:
    """This machine: its machine id (two hosts may share a name), else its host name (a container's id)."""
    return _first_line("/etc/machine-id", "/var/lib/dbus/machine-id") or socket.gethostname()


def _boot_id() -> str:
    """This boot of the machine: a process from an earlier boot is gone whatever its pid."""
    return _first_line("/proc/sys/kernel/random/boot_id")


def _started(pid: int) -> str | None:
    """When process `pid` started, immune to clock changes: clock ticks since boot (Linux), else psutil's time."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()[19]  # field 22, starttime
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def owner_tags() -> dict[str, str]:
    """Which process owns a run (tagged on every run), so a run left RUNNING by a killed process can be found."""
    return {
        "shop.host": socket.gethostname(),
        "shop.machine": _machine(),
        "shop.boot": _boot_id(),
        "shop.pid": str(os.getpid()),
        "shop.pid_started": _started(os.getpid()) or "",
    }


def _owner_gone(tags: dict[str, str]) -> bool:
    """True when the run's process is known to be gone: this machine, and a reboot since or no such process."""
    if tags.get("shop.machine") != _machine() or not tags.get("shop.pid", "").isdigit():
        return False  # another machine's run (or an untagged one): its process cannot be seen from here
    if tags.get("shop.boot") != _boot_id():
        return True
    return _started(int(tags["shop.pid"])) != tags.get("shop.pid_started")  # same pid, same start: alive


def fail_orphaned_runs() -> list[str]:
    """Mark FAILED the RUNNING runs whose process on this machine is gone (SIGKILL, out of memory, a reboot).

    A run whose process ends normally, raises or gets SIGTERM is closed by MLflow itself; only a process
    that never got to run its handlers leaves one RUNNING forever. Runs owned by other machines are left
    alone: their processes cannot be seen from here.
    """
    mlflow_client = client()
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not experiments:
        return []
    failed = []
    for run in mlflow_client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if not _owner_gone(tags):
            continue
        reason = f"process {tags['shop.pid']} on {tags.get('shop.host')} ended without closing the run (killed?)"
        mlflow_client.set_tag(run.info.run_id, "shop.failure", reason)
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
        logging.getLogger(__name__).warning("MLflow run %s marked FAILED: %s", run.info.run_id, reason)
        failed.append(run.info.run_id)
    return failed
