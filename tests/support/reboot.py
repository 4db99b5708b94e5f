"""A simulated host reboot (a power cut) for a private moord: moord, conmons and
containers all gone, exit files never written, and the records from another boot."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from tests.support.daemon import Moord


def conmon_pids(container_id: str) -> list[int]:
    """The conmons still running for a container (at most one while all is well)."""
    out = subprocess.run(["pgrep", "-f", f"conmon.* -c {container_id}"], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def simulate_host_reboot(d: Moord) -> list[str]:
    """Kill moord and everything it ran as a power cut would; the next `d.start()` finds a
    new boot. Returns the IDs of the containers on record."""
    records = sorted((d.data_root / "state" / "containers").glob("*.json"))
    ids = [r.stem for r in records]
    d.kill9()
    for cid in ids:
        for pid in conmon_pids(cid):
            os.kill(pid, signal.SIGKILL)
    crun_root = d.exec_root / "crun"
    for entry in crun_root.iterdir() if crun_root.is_dir() else ():
        subprocess.run(["crun", f"--root={crun_root}", "delete", "--force", entry.name],
                       capture_output=True)
    for record in records:
        (d.data_root / "containers" / record.stem / "userdata" / "exit").unlink(missing_ok=True)
        data = json.loads(record.read_text())
        data["state"]["boot_id"] = "a-boot-before-the-power-cut"
        record.write_text(json.dumps(data))
    return ids
