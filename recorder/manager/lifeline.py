"""`python -m recorder.manager.lifeline SIGNAL PARENT_PID COMMAND...`: run COMMAND so that it
gets SIGNAL when its parent dies, however the parent dies (SIGKILL included).

Linux keeps a process's parent-death signal (prctl PR_SET_PDEATHSIG) across exec, so this sets
it and execs COMMAND in place (same pid). It is a separate step instead of a `preexec_fn`
because the parent has threads (the manager's), and running Python between fork and exec in a
threaded process can deadlock. A parent that died before the signal was set is caught by
comparing the parent pid. Elsewhere than Linux the command simply runs without it.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies; False if it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def command(sig: int, cmd: list[str]) -> list[str]:
    """argv running `cmd` (argv[0] a path) with parent-death signal `sig`, this process the
    parent."""
    return [sys.executable, "-m", __name__, str(int(sig)), str(os.getpid()), *cmd]


def main(argv: list[str]) -> int:
    sig, parent, *cmd = argv
    set_parent_death_signal(int(sig))
    if os.getppid() != int(parent):
        return 1  # the parent is already gone: nobody wants the command any more
    os.execv(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
