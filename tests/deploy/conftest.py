"""The CLI contract shared by the compose and manifest checks: every invocation must be a real command.

A test module lists its invocations in ``INVOCATIONS`` as ``(where, argv)``; a test that takes the
``invocation`` argument runs once per entry. Invocations of a command listed in ``PENDING_COMMANDS``
are strict xfails, so they turn into failures (to be unmarked) as soon as the command lands.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import click
import pytest

from command_line.main import cli

#: Subcommands used by compose or the manifests that the CLI does not have yet, with why they are
#: needed. Empty: every command used exists.
PENDING_COMMANDS: dict[str, str] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "invocation" not in metafunc.fixturenames:
        return
    params = []
    for where, argv in metafunc.module.INVOCATIONS:
        stripped = argv[1:] if argv[:1] == ["mmm-backfill"] else argv
        name = stripped[0] if stripped else ""
        marks = []
        if name in PENDING_COMMANDS:
            reason = f"`mmm-backfill {name}` does not exist yet: {PENDING_COMMANDS[name]}"
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(pytest.param(argv, id=f"{where}: {shlex.join(stripped)}", marks=marks))
    metafunc.parametrize("invocation", params)


def option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _check_invocation(argv: list[str]) -> None:
    """Fail unless ``mmm-backfill *argv`` names a real subcommand with real options and valid values."""
    if argv[:1] == ["mmm-backfill"]:
        argv = argv[1:]
    assert argv, "no subcommand"
    name, args = argv[0], argv[1:]
    assert name in cli.commands, f"mmm-backfill has no subcommand {name!r} (it has {sorted(cli.commands)})"
    command = cli.commands[name]
    unknown = {a.split("=", 1)[0] for a in args if a.startswith("-")} - option_names(command)
    assert not unknown, f"mmm-backfill {name} has no option {sorted(unknown)}"
    command.make_context(name, list(args))  # raises on bad values and missing option arguments


@pytest.fixture(scope="session")
def check_invocation() -> Callable[[list[str]], None]:
    return _check_invocation
