"""README and --help kept honest: every command is documented and has help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchtrack.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(command.name or "" for command in app.registered_commands)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick_start, re.DOTALL)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "benchtrack run experiments --level quick" in commands[0]
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci_script


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_a_readme_entry(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"benchtrack {command}" in README


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_a_command_is_in_the_readme(command: str) -> None:
    click_command = next(c for c in app.registered_commands if c.name == command)
    from typer.main import get_command

    options = [
        opt for param in get_command(app).commands[command].params  # type: ignore[attr-defined]
        for opt in param.opts if opt.startswith("--") and opt not in ("--help", "--format", "--tracking-uri")
    ]
    missing = [opt for opt in options if opt not in README]
    assert click_command is not None
    assert not missing, f"{command}: README does not mention {missing}"
