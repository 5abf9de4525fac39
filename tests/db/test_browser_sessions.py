"""Browser sessions and token expiry in the catalog: only hashes stored, sessions end on revoke,
after their idle time, at their absolute end, and with their token."""

from __future__ import annotations

import time

import pytest

from recorder.db.control import Control
from recorder.db.tables import browser_sessions, tokens

S = 1_000_000_000  # ns per second


@pytest.fixture
def control(catalog_url):
    c = Control(catalog_url)
    yield c
    c.close()


def _age(control: Control, table, seconds: float, **columns) -> None:
    """Move a row's times into the past, as if `seconds` had gone by."""
    back = int(seconds * 1e9)
    with control.engine.begin() as conn:
        conn.execute(table.update().values({k: table.c[k] - back for k in columns}))


def test_a_session_names_its_token_and_stores_only_a_hash(control):
    token, rec = control.create_token("alice")
    secret, session = control.create_session(rec["id"], idle_s=3600, max_s=86400)
    assert secret != token and secret.startswith("ses_")
    got = control.verify_session(secret)
    assert got["id"] == rec["id"] and got["name"] == "alice" and "hash" not in got
    assert control.verify_session(secret + "x") is None
    assert control.verify_token(secret) is None  # a session secret is no API token
    with control.engine.connect() as conn:
        stored = [h for (h,) in conn.exec_driver_sql("select hash from browser_sessions")]
    assert len(stored) == 1 and secret not in stored[0]
    assert [s["id"] for s in control.list_sessions(rec["id"])] == [session["id"]]


def test_revoking_a_session_ends_it(control):
    _, rec = control.create_token()
    secret, _ = control.create_session(rec["id"], idle_s=3600, max_s=86400)
    assert control.revoke_session(secret) is True
    assert control.verify_session(secret) is None
    assert control.revoke_session(secret) is False


def test_a_session_ends_after_its_idle_time(control):
    _, rec = control.create_token()
    secret, session = control.create_session(rec["id"], idle_s=60, max_s=86400)
    start = session["created_ns"]
    assert control.verify_session(secret, now=start + 59 * S) is not None
    [seen] = control.list_sessions()
    assert seen["last_seen_ns"] == start + 59 * S  # used: the idle clock restarts
    assert control.verify_session(secret, now=start + 118 * S) is not None
    assert control.verify_session(secret, now=start + 118 * S + 61 * S) is None
    assert control.list_sessions() == []  # an ended session's row is removed


@pytest.mark.parametrize("idle_s", [2, 30, 600])
def test_a_session_used_every_half_idle_time_stays_valid(control, idle_s):
    _, rec = control.create_token()
    secret, session = control.create_session(rec["id"], idle_s=idle_s, max_s=86400)
    now = session["created_ns"]
    for _ in range(8):  # four idle periods
        now += idle_s * S // 2
        assert control.verify_session(secret, now=now) is not None
    assert control.list_sessions()[0]["last_seen_ns"] > now - idle_s * S // 2


def test_a_session_ends_at_its_absolute_end_however_active(control):
    _, rec = control.create_token()
    secret, _ = control.create_session(rec["id"], idle_s=3600, max_s=7200)
    _age(control, browser_sessions, 7201, expires_ns=1)
    assert control.verify_session(secret) is None


def test_revoking_a_token_ends_its_sessions_only(control):
    _, alice = control.create_token("alice")
    _, bob = control.create_token("bob")
    a, _ = control.create_session(alice["id"], idle_s=3600, max_s=86400)
    b, _ = control.create_session(bob["id"], idle_s=3600, max_s=86400)
    control.revoke_token(alice["id"])
    assert control.verify_session(a) is None and control.verify_session(b) is not None
    assert [s["token_id"] for s in control.list_sessions()] == [bob["id"]]
    control.revoke_tokens_named("bob")
    assert control.list_sessions() == []


def test_tokens_may_expire_and_take_their_sessions_along(control):
    forever, rec = control.create_token("forever")
    assert rec["expires_ns"] is None and control.verify_token(forever) is not None
    brief, rec = control.create_token("brief", expires_s=3600)
    assert rec["expires_ns"] > time.time_ns()
    session, _ = control.create_session(rec["id"], idle_s=3600, max_s=86400)
    assert control.verify_token(brief) is not None and control.verify_session(session)
    _age(control, tokens, 3601, expires_ns=1)
    assert control.verify_token(brief) is None
    assert control.verify_session(session) is None
    assert control.verify_token(forever) is not None
    listed = {t["name"]: t for t in control.list_tokens()}
    assert listed["brief"]["expires_ns"] < time.time_ns()  # still listed, as expired


def test_expire_sessions_removes_every_ended_one(control):
    _, rec = control.create_token()
    live, _ = control.create_session(rec["id"], idle_s=3600, max_s=86400)
    _, ended = control.create_session(rec["id"], idle_s=3600, max_s=86400)
    with control.engine.begin() as conn:
        conn.execute(
            browser_sessions.update()
            .where(browser_sessions.c.id == ended["id"])
            .values(expires_ns=browser_sessions.c.created_ns)
        )
    assert control.expire_sessions() == 1
    assert control.verify_session(live) is not None
