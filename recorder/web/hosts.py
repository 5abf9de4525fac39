"""Hosts: the managers sharing this catalog, one per recorder host (GET /api/v1/hosts and the
Hosts page), so one UI shows every machine, whether it is alive, its disk and its jobs.

A host is known by its managers' heartbeats (db/managers.py): alive while one of them beat
within MANAGER_TIMEOUT_S; a host whose manager was killed stays listed, not alive, with the
jobs another manager failed as lost until it comes back and repairs them. A manager that shut
down cleanly signs off, and its host leaves the list.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from recorder.db.jobs import ACTIVE_STATES
from recorder.db.managers import MANAGER_TIMEOUT_S
from recorder.web.api import api, state
from recorder.web.models import Response
from recorder.web.ui import bp, page


class HostJob(Response):
    id: str
    kind: str
    state: str
    run_id: str | None = None
    pid: int | None = None
    error: str | None = None
    lost_ns: int | None = Field(None, description="Failed as lost; runs not repaired yet.")


class HostOut(Response):
    name: str
    alive: bool
    last_beat_ns: int
    heartbeat_age_s: float
    data: str = Field(description="The manager's data folder on that host.")
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    managers: int = Field(description="Managers on it (one per data folder).")
    jobs: list[HostJob] = Field(
        description="Its jobs that are pending, starting or running, and those failed as lost "
        "whose runs it has not repaired yet."
    )


class HostList(Response):
    hosts: list[HostOut]


def hosts_overview() -> list[dict[str, Any]]:
    """Every host that has a manager row, the newest beat first per host."""
    control = state().control
    now = time.time_ns()
    by_host: dict[str, list[dict]] = {}
    for mgr in control.all_managers():  # newest beat first
        by_host.setdefault(mgr["host"], []).append(mgr)
    active = [j for j in control.list_jobs(active=True) if j["host"]]
    out = []
    for name in sorted(by_host):
        newest = by_host[name][0]
        disk = (newest.get("info") or {}).get("disk") or {}
        age = max(0.0, (now - newest["heartbeat_ns"]) / 1e9)
        jobs = [j for j in active if j["host"] == name] + control.lost_jobs(name)
        out.append(
            {
                "name": name,
                "alive": age <= MANAGER_TIMEOUT_S,
                "last_beat_ns": newest["heartbeat_ns"],
                "heartbeat_age_s": age,
                "data": newest["data"],
                "disk_total_bytes": disk.get("total_bytes"),
                "disk_free_bytes": disk.get("free_bytes"),
                "managers": len(by_host[name]),
                "jobs": [
                    {k: j[k] for k in HostJob.model_fields}  # type: ignore[literal-required]
                    for j in jobs
                    if j["state"] in ACTIVE_STATES or j["lost_ns"]
                ],
            }
        )
    return out


@bp.app_template_global()
def host_choices() -> list[str]:
    """Hosts a recording or a source may name (the form's suggestions): every known one."""
    return sorted({m["host"] for m in state().control.all_managers()})


@api.op("GET", "/hosts", tag="system", response=HostList)
def list_hosts():
    """Recorder hosts sharing this catalog: alive or not, last heartbeat, data folder, disk
    total and free, and their jobs."""
    return {"hosts": hosts_overview()}


@bp.get("/hosts")
def hosts_page():
    """Hosts, their disks and their jobs."""
    return page("hosts.html", active="hosts", hosts=hosts_overview())
