"""`recorder record` driven from stdin and signals: `t` trigger, `p` pause, `r` resume,
`m TEXT` marker, `s` split; SIGUSR1 triggers; bad values are one line and exit 2; every run the
recording makes is printed and indexed in the catalog."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

from recorder.store.reader import RunReader
from tests.helpers import CLI, cli_json, end_process, run_cli, wait_for
from tests.recording.enginehelp import Numbered


class Recorder:
    """`recorder record` in the background with a pipe to its stdin; stdout lines collected."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [*CLI, "record", *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> str:
        end_process(self.proc)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.fixture
def source(ctx):
    src = Numbered(ctx, rate=100)
    src.start()
    yield src
    src.stop()


def _runs(data_dir) -> list[dict]:
    return cli_json("ls", "--data", data_dir)


@pytest.mark.timeout(90)
def test_stdin_and_sigusr1_trigger_an_armed_recording(source, data_dir):
    rec = Recorder(source.endpoint, "--pre-trigger", "0.5", "--post-trigger", "0.3",
                   "--max-buffer", "10MB", "--data", data_dir)  # fmt: skip
    try:
        wait_for(lambda: len(source.sent_ns) >= 100, 30, "the recorder to subscribe")
        rec.say("m before the trigger")
        rec.say("t")
        wait_for(lambda: len(rec.lines) == 1, 30, "the first run's id")
        at = len(source.sent_ns)
        wait_for(lambda: len(source.sent_ns) >= at + 150, 30, "the first run to end")
        rec.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: len(rec.lines) == 2, 30, "the second run's id")
        at = len(source.sent_ns)
        wait_for(lambda: len(source.sent_ns) >= at + 150, 30, "the second run to end")
    finally:
        err = rec.stop()
    assert rec.proc.returncode == 0, err
    listed = {r["run_id"]: r for r in _runs(data_dir)}
    assert set(listed) == set(rec.lines)
    assert all(r["status"] == "complete" for r in listed.values()), listed
    first, second = (RunReader(data_dir / "runs" / i) for i in rec.lines)
    assert [m["text"] for m in first.markers()] == ["before the trigger"]
    assert first.markers()[0]["author"] == "cli"
    assert first.attrs["trigger"]["rule"] == second.attrs["trigger"]["rule"] == "manual"
    sizes = [run.stream("main").n_messages for run in (first, second)]
    assert all(30 <= n <= 100 for n in sizes), sizes  # 0.8 s at 100/s, give or take
    assert first.annotations()["session"]["id"] == second.annotations()["session"]["id"]
    assert "armed" in err


@pytest.mark.timeout(90)
def test_stdin_pauses_resumes_and_splits(source, data_dir):
    rec = Recorder(source.endpoint, "--data", data_dir, "--flush-interval", "0.1")
    try:
        wait_for(lambda: len(rec.lines) == 1, 30, "the run's id")
        at = len(source.sent_ns)
        wait_for(lambda: len(source.sent_ns) >= at + 30, 30, "messages")
        rec.say("p")
        at = len(source.sent_ns)
        wait_for(lambda: len(source.sent_ns) >= at + 30, 30, "messages while paused")
        rec.say("r")
        rec.say("m after the pause")
        rec.say("s")
        wait_for(lambda: len(rec.lines) == 2, 30, "the next run's id")
        at = len(source.sent_ns)
        wait_for(lambda: len(source.sent_ns) >= at + 30, 30, "messages in the next run")
        rec.say("what")
    finally:
        err = rec.stop()
    assert rec.proc.returncode == 0, err
    first, second = (RunReader(data_dir / "runs" / i) for i in rec.lines)
    [pause] = first.pauses()
    assert pause["end_ns"] is not None and pause["messages"] >= 20
    assert [m["text"] for m in first.markers()] == ["after the pause"]
    assert first.stream("main").n_messages and second.stream("main").n_messages
    assert "unknown command 'what'" in err
    assert {r["run_id"] for r in _runs(data_dir)} == set(rec.lines)


@pytest.mark.timeout(60)
def test_stdin_at_its_end_is_ignored(source, data_dir):
    out = subprocess.run(
        [*CLI, "record", source.endpoint, "--duration", "1", "--data", str(data_dir)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--post-trigger", "1"], "--post-trigger needs --pre-trigger"),
        (["--pre-trigger", "-1"], "--pre-trigger: 0 to"),
        (["--pre-trigger", "1", "--max-buffer", "lots"], "not a size"),
        (["--split-every", "soon"], "--split-every"),
        (["--pre-trigger", "1", "--trigger", "nonsense 3"], "trigger rule"),
        (["--pre-trigger", "1", "--split-every", "10s"], "not both"),
        (["--session", "ses-20260101-000000-abcdef"], "no session"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(data_dir, args, message):
    out = run_cli("record", "tcp://127.0.0.1:1", *args, "--data", data_dir)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
