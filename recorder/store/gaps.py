"""Gap accounting over protocol sequence numbers.

A jump forward counts the numbers skipped; a jump backwards is a restart of the source (Open
Ephys restarts message_num at each acquisition), counted separately so it is not mistaken for loss.
Where the protocol says what number a restarted source begins with, the numbers between that
and the first one seen after the restart were lost too, and count as gaps.
"""

from __future__ import annotations

#: The first sequence number of a restarted source, for protocols whose numbers tell it.
#: ADZMQ: the frame number is the NDArray uniqueId, which counts from 1 again when the detector
#: driver's array counter is reset (a new acquisition, an IOC restart).
RESTART_FIRST_SEQ: dict[str, int] = {"adzmq": 1}


class GapCounter:
    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.missing = 0
        self.resets = 0

    def see(self, key: str, seq: int, restart_first: int | None = None) -> None:
        """`restart_first`: the number a restarted source begins with, when the protocol says."""
        last = self.last.get(key)
        if last is not None:
            if seq > last + 1:
                self.missing += seq - last - 1
            elif seq <= last:
                self.resets += 1
                if restart_first is not None and seq > restart_first:
                    self.missing += seq - restart_first
        self.last[key] = seq
