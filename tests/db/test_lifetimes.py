"""Token and session lifetimes are capped at ten years, one bound for the command line, the
environment and the API: a longer one would overflow SQLite's 64-bit nanosecond columns."""

from __future__ import annotations

import pytest

from recorder import config, limits
from recorder.errors import UsageError
from recorder.web.models import TokenCreate
from tests.helpers import run_cli

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


def test_durations_are_capped_at_ten_years():
    assert config.parse_duration("3650d") == limits.LIFETIME_MAX_S
    with pytest.raises(UsageError, match="too long"):
        config.parse_duration("3651d")
    with pytest.raises(UsageError, match="too long"):
        config.parse_duration("9999999999999w")


def test_the_api_takes_the_same_bound():
    assert TokenCreate(expires_s=limits.LIFETIME_MAX_S).expires_s == limits.LIFETIME_MAX_S
    with pytest.raises(ValueError):
        TokenCreate(expires_s=limits.LIFETIME_MAX_S + 1)


def test_huge_session_lifetimes_from_the_environment_are_refused(monkeypatch):
    monkeypatch.setenv(config.SESSION_MAX_ENV, "99999999999999w")
    with pytest.raises(UsageError, match="too long"):
        config.session_lifetimes()


@pytest.mark.timeout(60)
def test_token_create_with_a_huge_expiry_is_one_error_line(data_dir):
    out = run_cli("token", "create", "--expires", "9999999999999w", "--data", data_dir)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "too long" in out.stderr, out.stderr
