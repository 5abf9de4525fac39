"""A real PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder, one server per
test process (each xdist worker has its own), a fresh database per test.

The server listens on 127.0.0.1 on a random port and keeps its Unix socket in its own folder, so
it never meets a system server. It is tuned for tests (no fsync, small buffers): what is
committed is written to the OS at once, so stopping the server like a crash (`stop()`, as a
test that restarts it does) keeps every commit; only a crash of the machine would lose them.
initdb refuses to run as root, so as root the server runs as the `postgres` user (Debian's
package makes it), owning the temporary folder.

The binaries are found in $RECORDER_TEST_PG_BIN, on PATH, or in Debian's
/usr/lib/postgresql/<version>/bin (newest first); where none is, the tests that need a server
are skipped, saying so.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import free_port

BIN_ENV = "RECORDER_TEST_PG_BIN"
#: Connections every test process may hold: engines of several Catalogs and Controls at once,
#: a manager's, its workers', each with a pool.
MAX_CONNECTIONS = 300
_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": str(MAX_CONNECTIONS),
    "shared_buffers": "16MB",
    "listen_addresses": "127.0.0.1",
    "log_min_messages": "fatal",
}


def find_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    env = os.environ.get(BIN_ENV)
    candidates = [Path(env)] if env else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates += sorted(debian.glob("*/bin"), key=version, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def unavailable() -> str | None:
    """Why no test server can run here, or None."""
    if find_bin() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql, "
            f"or set ${BIN_ENV}"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed: pip install -e '.[test]'"
    return None


class PgServer:
    """One throwaway server; `url(name)` reaches one of its databases with SQLAlchemy."""

    def __init__(self) -> None:
        bin_dir = find_bin()
        assert bin_dir is not None, unavailable()
        self.bin = bin_dir
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
        # short, so the socket path fits; in /tmp when the server runs as another user, who
        # could not reach a $TMPDIR inside root's home
        where = "/tmp" if self.user is not None and Path("/tmp").is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="recpg-", dir=where))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / tool), *args],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def start(self) -> None:
        """Start on a free port (a port taken meanwhile by someone else: the next one)."""
        last = ""
        for _ in range(5):
            self.port = self.port or free_port()
            options = " ".join(
                [f"-c {k}={v}" for k, v in _SETTINGS.items()]
                + [f"-p {self.port}", f"-c unix_socket_directories={self.root}"]
            )
            done = self._run(
                "pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data),
                "-l", str(self.log), "-o", options, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            last = done.stderr + done.stdout + self._log_tail()
            self.port = 0
        raise RuntimeError(f"cannot start the test PostgreSQL server: {last}")

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data), check=False)

    def restart(self) -> None:
        """Stop (every connection is cut, as in a crash) and start again on the same port."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def version(self) -> int:
        """The server's major version (from the data folder: no connection needed)."""
        return int((self.data / "PG_VERSION").read_text().split(".")[0])

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new, empty database (copied from template0: about 0.1 s); returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        # copying the files of a small template is faster than writing it through the WAL
        strategy = " STRATEGY FILE_COPY" if self.version >= 15 else ""
        self._admin(f"CREATE DATABASE {name} TEMPLATE template0{strategy}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a test's database, cutting whatever connections it left open."""
        if self.running():
            self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
