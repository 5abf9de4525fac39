"""API tokens (`tokens`), stored as SHA-256 hashes only: the plain text is shown once.

A token may expire (`expires_ns`; NULL: never); an expired token is refused like a revoked one
and its row stays, so `token list` still shows it. Revoking a token also ends the browser
sessions signed in with it (browser_sessions.py).
"""

from __future__ import annotations

import hashlib
import secrets
import time

import sqlalchemy as sa

from recorder.db.engine import Queries, guard_db_errors, row_dict
from recorder.db.tables import browser_sessions, tokens
from recorder.errors import NotFound, UsageError

_TOKEN_PREFIX = "rec_"
#: The longest token name (the column's length, which PostgreSQL enforces).
NAME_MAX = 128


def token_hash(token: str) -> str:
    """Tokens are 256-bit random strings, so one fast hash is enough to make a leaked table
    useless (no password-style key stretching needed), and lookup stays an indexed equality."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def end_sessions_of(conn: sa.Connection, which: sa.ColumnElement[bool]) -> int:
    """Delete the browser sessions signed in with the tokens `which` selects (in the caller's
    transaction: revoking a token and ending its sessions is one step)."""
    return conn.execute(browser_sessions.delete().where(which)).rowcount


class Tokens(Queries):
    @guard_db_errors()
    def create_token(self, name: str = "", expires_s: float | None = None) -> tuple[str, dict]:
        """A new token, valid for `expires_s` seconds (None: until revoked): the plain text is
        returned once and never stored."""
        if len(name) > NAME_MAX:
            raise UsageError(f"a token name has at most {NAME_MAX} characters")
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time_ns()
        row = {
            "id": secrets.token_hex(4),
            "name": name,
            "hash": token_hash(token),
            "created_ns": now,
            "last_used_ns": None,
            "expires_ns": None if expires_s is None else now + int(expires_s * 1e9),
        }
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(**row))
        return token, {k: v for k, v in row.items() if k != "hash"}

    @guard_db_errors()
    def verify_token(self, token: str) -> dict | None:
        """The token's record if it is valid, else None."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.hash == digest)).first()
        if row is None or not secrets.compare_digest(row.hash, digest):
            return None
        out = row_dict(row)
        out.pop("hash")
        now = time.time_ns()
        if out["expires_ns"] is not None and now >= out["expires_ns"]:
            return None
        if not out["last_used_ns"] or now - out["last_used_ns"] > 60e9:  # at most once a minute
            with self.engine.begin() as conn:
                conn.execute(
                    tokens.update().where(tokens.c.id == out["id"]).values(last_used_ns=now)
                )
        return out

    @guard_db_errors()
    def list_tokens(self) -> list[dict]:
        cols = [c for c in tokens.columns if c.name != "hash"]
        with self.engine.connect() as conn:
            return [
                row_dict(r) for r in conn.execute(sa.select(*cols).order_by(tokens.c.created_ns))
            ]

    @guard_db_errors()
    def revoke_token(self, token_id: str) -> None:
        """Delete the token and end every browser session signed in with it."""
        with self.engine.begin() as conn:
            if not conn.execute(tokens.delete().where(tokens.c.id == token_id)).rowcount:
                raise NotFound(f"no token {token_id!r}")
            end_sessions_of(conn, browser_sessions.c.token_id == token_id)

    @guard_db_errors()
    def revoke_tokens_named(self, name: str) -> int:
        with self.engine.begin() as conn:
            ids = sa.select(tokens.c.id).where(tokens.c.name == name)
            end_sessions_of(conn, browser_sessions.c.token_id.in_(ids))
            return conn.execute(tokens.delete().where(tokens.c.name == name)).rowcount
