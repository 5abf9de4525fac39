"""The runs page's date range typed in the browser's local time."""

from __future__ import annotations

from recorder.web.ui_data import local_range


def test_a_local_range_gets_the_browsers_zone():
    got = local_range({"since": "2026-12-01T10:00", "until": "2026-12-02", "tz": "330", "q": "x"})
    assert got == {"since": "2026-12-01T10:00+05:30", "until": "2026-12-02T00:00+05:30", "q": "x"}
    assert local_range({"since": "2026-12-01T10:00", "tz": "-90"})["since"].endswith("-01:30")
    assert local_range({"since": "2026-12-01T10:00Z", "tz": "60"})["since"] == "2026-12-01T10:00Z"
    assert local_range({"since": "2026-12-01T10:00", "tz": "x"}) == {"since": "2026-12-01T10:00"}
    assert local_range({"since": "2026-12-01T10:00", "tz": "9999"}) == {"since": "2026-12-01T10:00"}
