"""GapCounter.see_run counts exactly as see() number by number does."""

from __future__ import annotations

import random

import pytest

from recorder.store.gaps import GapCounter

pytestmark = pytest.mark.timeout(60)

NO_SEQ = -1


def _one_by_one(runs, restart_first):
    g = GapCounter()
    for key, seqs in runs:
        for s in seqs:
            if s != NO_SEQ:
                g.see(key, s, restart_first)
    return g.missing, g.resets, g.last


def _by_runs(runs, restart_first):
    g = GapCounter()
    for key, seqs in runs:
        g.see_run(key, seqs, restart_first, NO_SEQ)
    return g.missing, g.resets, g.last


@pytest.mark.parametrize("restart_first", [None, 0, 1])
def test_see_run_counts_as_see_does(restart_first):
    rng = random.Random(7)
    cases = [
        [("a", list(range(5, 20))), ("a", list(range(20, 40)))],  # steady
        [("a", list(range(5, 20))), ("a", list(range(25, 40)))],  # a gap between runs
        [("a", [1, 2, 4, 5])],  # a gap inside a run
        [("a", list(range(100, 110))), ("a", list(range(0, 10)))],  # a restart
        [("a", list(range(100, 110))), ("a", list(range(60, 70)))],  # late, not a restart
        [("a", [NO_SEQ, NO_SEQ]), ("a", [3, NO_SEQ, 4])],  # messages without numbers
        [("a", list(range(-3, 3)))],  # through NO_SEQ's value: not steady
        [("a", []), ("b", list(range(0, 4))), ("a", list(range(9, 12)))],
    ]
    for _ in range(200):  # runs that are mostly steady, with every kind of break
        runs, at = [], rng.randrange(0, 50)
        for _ in range(rng.randrange(1, 6)):
            n = rng.randrange(0, 8)
            seqs = list(range(at, at + n))
            if seqs and rng.random() < 0.3:
                seqs[rng.randrange(n)] = rng.choice([NO_SEQ, at + 40, max(0, at - 20)])
            runs.append((rng.choice("ab"), seqs))
            at = (seqs[-1] if seqs else at) + rng.choice([1, 1, 1, 3, -30])
            at = max(at, 0)
        cases.append(runs)
    for runs in cases:
        assert _by_runs(runs, restart_first) == _one_by_one(runs, restart_first), runs
