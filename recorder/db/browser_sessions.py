"""Browser sessions (`browser_sessions`): what the sign-in cookie holds instead of the API token.

A session is created at sign-in from a valid token and names it; the cookie carries a random
secret of its own, of which only the SHA-256 hash is stored (as for tokens). So signing out
(revoke) really ends the session, a leaked cookie is not a token that works forever, and a
session ends by itself after `idle_ns` without use or at `expires_ns`, whichever comes first;
revoking or expiring its token ends it too (verify checks the token on every request).
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa

from recorder.db.engine import Queries, guard_db_errors, row_dict
from recorder.db.tables import browser_sessions, tokens
from recorder.db.tokens import token_hash

_SESSION_PREFIX = "ses_"
#: last_seen_ns is written at most this often (a page polls every second), or every quarter of
#: the idle time if that is shorter, so a session in use never reaches its idle end.
_TOUCH_NS = 60_000_000_000


class BrowserSessions(Queries):
    @guard_db_errors()
    def create_session(self, token_id: str, *, idle_s: float, max_s: float) -> tuple[str, dict]:
        """A new session for `token_id`: the secret is returned once and never stored."""
        secret = _SESSION_PREFIX + secrets.token_urlsafe(32)
        now = time.time_ns()
        row = {
            "id": secrets.token_hex(8),
            "token_id": token_id,
            "hash": token_hash(secret),
            "created_ns": now,
            "last_seen_ns": now,
            "idle_ns": int(idle_s * 1e9),
            "expires_ns": now + int(max_s * 1e9),
        }
        with self.engine.begin() as conn:
            conn.execute(browser_sessions.insert().values(**row))
        return secret, {k: v for k, v in row.items() if k != "hash"}

    @guard_db_errors()
    def verify_session(self, secret: str, *, now: int | None = None) -> dict | None:
        """The record of the token the session was signed in with, if the session and the
        token are both still valid at `now` (ns; default: the clock); else None (and an ended
        session's row is removed). Using it restarts its idle clock."""
        if not secret or len(secret) > 200:
            return None
        digest = token_hash(secret)
        cols = [c for c in tokens.columns if c.name != "hash"]
        query = (
            sa.select(browser_sessions, *[c.label(f"tok_{c.name}") for c in cols])
            .join(tokens, tokens.c.id == browser_sessions.c.token_id)
            .where(browser_sessions.c.hash == digest)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not secrets.compare_digest(row.hash, digest):
            return None
        now = time.time_ns() if now is None else now
        token_expired = row.tok_expires_ns is not None and now >= row.tok_expires_ns
        if now >= row.expires_ns or now - row.last_seen_ns >= row.idle_ns or token_expired:
            self._delete(browser_sessions.c.id == row.id)
            return None
        if now - row.last_seen_ns > min(_TOUCH_NS, row.idle_ns // 4):
            with self.engine.begin() as conn:
                conn.execute(
                    browser_sessions.update()
                    .where(browser_sessions.c.id == row.id)
                    .values(last_seen_ns=now)
                )
        record = {c.name: getattr(row, f"tok_{c.name}") for c in cols}
        record["session_id"] = row.id
        return record

    @guard_db_errors()
    def revoke_session(self, secret: str) -> bool:
        """End the session with this secret (signing out); False if there was none."""
        if not secret or len(secret) > 200:
            return False
        return self._delete(browser_sessions.c.hash == token_hash(secret)) > 0

    @guard_db_errors()
    def expire_sessions(self) -> int:
        """Remove every session that has ended (verify refuses them anyway; this keeps the
        table small)."""
        now = time.time_ns()
        ended = sa.or_(
            browser_sessions.c.expires_ns <= now,
            browser_sessions.c.last_seen_ns + browser_sessions.c.idle_ns <= now,
            browser_sessions.c.token_id.not_in(sa.select(tokens.c.id)),
        )
        return self._delete(ended)

    @guard_db_errors()
    def list_sessions(self, token_id: str | None = None) -> list[dict]:
        cols = [c for c in browser_sessions.columns if c.name != "hash"]
        query = sa.select(*cols).order_by(browser_sessions.c.created_ns)
        if token_id is not None:
            query = query.where(browser_sessions.c.token_id == token_id)
        with self.engine.connect() as conn:
            return [row_dict(r) for r in conn.execute(query)]

    def _delete(self, where: sa.ColumnElement[bool]) -> int:
        with self.engine.begin() as conn:
            return conn.execute(browser_sessions.delete().where(where)).rowcount
