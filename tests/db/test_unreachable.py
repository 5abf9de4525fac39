"""A server catalog that does not answer at start is one error line and exit code 2 for the
commands that need it, its password never shown; `ls` does not fall back to the local run
stores as it does for a damaged SQLite file: a shared catalog lists other hosts' runs too."""

from __future__ import annotations

import pytest

from tests.helpers import free_port, run_cli


@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", [["ls"], ["manager"], ["serve", "--port", "PORT"]])
def test_an_unreachable_database_at_start_is_one_line_and_exit_code_2(data, command):
    url = f"postgresql+psycopg://rec:secret@127.0.0.1:{free_port()}/recorder"
    args = [str(free_port()) if a == "PORT" else a for a in command]
    out = run_cli(*args, "--data", data, "--catalog", url)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open catalog"), out.stderr
    assert "Connection refused" in lines[0] and "secret" not in out.stderr
    assert out.stdout == ""
