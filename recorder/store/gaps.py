"""Gap accounting over protocol sequence numbers.

A jump forward counts the numbers skipped; a jump backwards is a restart of the source (Open
Ephys restarts message_num at each acquisition), counted separately so it is not mistaken for loss.
"""

from __future__ import annotations


class GapCounter:
    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.missing = 0
        self.resets = 0

    def see(self, key: str, seq: int) -> None:
        last = self.last.get(key)
        if last is not None:
            if seq > last + 1:
                self.missing += seq - last - 1
            elif seq <= last:
                self.resets += 1
        self.last[key] = seq
