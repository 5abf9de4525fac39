"""The shipped deployment files default to loopback: plain HTTP never faces a network unasked."""

from __future__ import annotations

import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_container_listens_on_loopback_only():
    text = (DEPLOY / "Containerfile").read_text()
    assert "0.0.0.0" not in re.sub(r"#.*", "", text)
    assert "GUNICORN_BIND=127.0.0.1:" in text
    cmd = re.search(r"^CMD (.*)$", text, re.M)[1]
    assert '"--host", "127.0.0.1"' in cmd


def test_gunicorn_config_defaults_to_loopback():
    namespace: dict = {}
    exec((DEPLOY / "gunicorn.conf.py").read_text(), namespace)
    assert namespace["bind"].startswith("127.0.0.1:")
