"""Gap accounting over protocol sequence numbers.

A jump forward counts the numbers skipped; a jump backwards is a restart of the source (Open
Ephys restarts message_num at each acquisition), counted separately so it is not mistaken for loss.
Where the protocol says what number a restarted source begins with (its descriptor's
`restart_first_seq`), the numbers between that and the first one seen after the restart were lost
too and count as gaps; a small step back there (a frame delivered out of order or twice, as
areaDetector plugins with several threads do) is counted as a reset only and does not move the
sequence back, so neither it nor the frames after it count as loss.
"""

from __future__ import annotations

from collections.abc import Sequence


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
                if restart_first is not None:
                    if seq >= last // 2:  # late or repeated, not a new acquisition
                        return
                    if seq > restart_first:
                        self.missing += seq - restart_first
        self.last[key] = seq

    def see_run(self, key: str, seqs: Sequence[int], restart_first: int | None, skip: int) -> None:
        """see() each number in turn but `skip` (a message without one). Numbers that count up
        by one (a source's steady flow) change nothing past the first, so they cost one see():
        a Python call per message was a writer's cost that told nothing."""
        n = len(seqs)
        first = seqs[0] if n else skip
        steady = n and not first <= skip < first + n
        if steady and list(seqs) == list(range(first, first + n)):
            self.see(key, first, restart_first)
            if self.last.get(key) == first:  # taken (not a late number, which leaves `last`)
                self.last[key] = first + n - 1
                return
            seqs = seqs[1:]
        for seq in seqs:
            if seq != skip:
                self.see(key, seq, restart_first)

    def forget(self) -> None:
        """Messages were left out on purpose (a pause): the next number starts afresh instead of
        counting the ones not stored as missing."""
        self.last.clear()
