"""A manager counts as alive while its heartbeat is recent: a loaded host delays beats by
seconds, and that must not make the dashboard report a live manager as dead."""

from __future__ import annotations

import time

import sqlalchemy as sa

from recorder.db.control import Control
from recorder.db.tables import managers


def _beat_aged(control: Control, manager_id: str, age_s: float) -> None:
    control.heartbeat(manager_id, pid=1, data="/data", started_ns=time.time_ns())
    with control.engine.begin() as conn:
        conn.execute(
            managers.update()
            .where(managers.c.id == manager_id)
            .values(heartbeat_ns=time.time_ns() - int(age_s * 1e9))
        )


def test_a_late_heartbeat_is_alive_and_a_long_silence_is_not(catalog_url):
    control = Control(catalog_url)
    _beat_aged(control, "host/1/late", 4.0)  # common under load: reported dead before
    _beat_aged(control, "host/2/gone", 60.0)
    with control.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(managers)).scalar() == 2
    assert [m["id"] for m in control.live_managers()] == ["host/1/late"]
    control.close()
