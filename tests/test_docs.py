"""The reference docs stay true: a CLI command, option or API operation added without its line in
docs/ fails here, and so does a line in docs/ for one that no longer exists.

The rules, simple enough to follow by hand:
- docs/cli.md has a heading `## \\`recorder ...\\`` per command (groups included). Every long
  option of the command appears in its section (up to the next `## ` heading), and every option
  named at the start of a list item there (`- \\`--flag ...\\`: ...`) is an option of that command.
- docs/api.md names every OpenAPI operation as a code span `METHOD /path`, with the path relative
  to /api/v1 (or with it) and parameters as in the OpenAPI document: `GET /runs/{run_id}`.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from recorder import config
from recorder.cli.main import main
from recorder.web import create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"
API = "/api/v1"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

COMMAND_HEADING = re.compile(r"^## `(recorder(?: [a-z][a-z-]*)*)`\s*$")
#: A list item that starts with option names: `- \`--data DIR\`, \`--catalog URL\`: ...`.
OPTION_ITEM = re.compile(r"^- ((?:`-[^`]*`(?:, )?)+)")
OPERATION = re.compile(rf"^({'|'.join(METHODS)}) (/[^\s?`]*)")


# -- the CLI -----------------------------------------------------------------------------------


def commands(cmd: click.Command = main, path: str = "recorder") -> dict[str, click.Command]:
    """Every command path of the `recorder` tree, groups included: {"recorder token list": ..}."""
    found = {path: cmd}
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            found.update(commands(sub, f"{path} {name}"))
    return found


def option_names(cmd: click.Command) -> set[str]:
    """Every spelling of every option (`--quiet`, `-q`); click's --help is added later, not here."""
    return {
        name
        for p in cmd.params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }


def long_flags(cmd: click.Command) -> set[str]:
    return {name for name in option_names(cmd) if name.startswith("--")}


def cli_sections(text: str) -> dict[str, str]:
    """{command path: its section}, a section ending at the next `## ` heading."""
    sections: dict[str, str] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            m = COMMAND_HEADING.match(line)
            current = None
            if m:
                assert m.group(1) not in sections, f"two sections for `{m.group(1)}`"
                current = sections.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in sections.items()}


def mentions(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def listed_options(section: str) -> set[str]:
    """The option names at the start of the section's list items."""
    names: set[str] = set()
    for line in section.splitlines():
        m = OPTION_ITEM.match(line)
        if m:
            names.update(re.findall(r"`(-[\w-]+)", m.group(1)))
    return names


@pytest.fixture(scope="module")
def cli_doc() -> dict[str, str]:
    return cli_sections((DOCS / "cli.md").read_text(encoding="utf-8"))


def test_every_command_has_a_section_in_cli_md(cli_doc):
    missing = sorted(set(commands()) - set(cli_doc))
    assert not missing, f"docs/cli.md has no `## \\`...\\`` section for: {missing}"


def test_every_section_in_cli_md_is_a_command(cli_doc):
    stale = sorted(set(cli_doc) - set(commands()))
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"


def test_every_option_is_documented_under_its_command(cli_doc):
    missing = [
        f"{path} {flag}"
        for path, cmd in sorted(commands().items())
        for flag in sorted(long_flags(cmd))
        if not mentions(cli_doc.get(path, ""), flag)
    ]
    assert not missing, f"options missing from their section of docs/cli.md: {missing}"


def test_every_documented_option_exists(cli_doc):
    cmds = commands()
    stale = [
        f"{path} {name}"
        for path, section in sorted(cli_doc.items())
        if path in cmds
        for name in sorted(listed_options(section) - option_names(cmds[path]))
    ]
    assert not stale, f"docs/cli.md lists options that do not exist: {stale}"


# -- the HTTP API ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("docs") / "data"
    config.data_dir(data)
    app = create_app(data)
    secret, _ = app.extensions["recorder"].control.create_token("docs")
    r = app.test_client().get(f"{API}/openapi.json", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def operations(doc: dict) -> set[str]:
    """{"GET /runs/{run_id}", ...}: every operation of the OpenAPI document, relative to /api/v1."""
    return {
        f"{method.upper()} {path.removeprefix(API)}"
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def documented_operations(text: str) -> set[str]:
    """Every code span of api.md that starts with `METHOD /path`, query and body left off."""
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        m = OPERATION.match(span)
        if m:
            found.add(f"{m.group(1)} {m.group(2).removeprefix(API)}")
    return found


@pytest.fixture(scope="module")
def api_doc() -> set[str]:
    return documented_operations((DOCS / "api.md").read_text(encoding="utf-8"))


def test_every_api_operation_is_in_api_md(openapi, api_doc):
    ops = operations(openapi)
    assert len(ops) > 20, "the OpenAPI document looks empty"
    missing = sorted(ops - api_doc)
    assert not missing, f"operations missing from docs/api.md: {missing}"


def test_every_operation_in_api_md_exists(openapi, api_doc):
    stale = sorted(api_doc - operations(openapi))
    assert not stale, f"docs/api.md names operations the API does not have: {stale}"
