"""README and --help kept honest: every command (sub-commands too) is documented and has help."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from benchtrack.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHARED_OPTIONS = ("--help", "--format", "--tracking-uri")


def _leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):  # typer vendors its own click: duck-type the group
        return [leaf for name, sub in sorted(command.commands.items()) for leaf in _leaf_commands(sub, (*path, name))]
    return [(path, command)]


COMMANDS = _leaf_commands(get_command(app))
IDS = [" ".join(path) for path, _ in COMMANDS]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick_start, re.DOTALL)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "benchtrack run experiments --level quick" in commands[0]
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci_script


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_has_help_with_an_example_and_a_readme_entry(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert f"benchtrack {' '.join(path)}" in README


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_option_of_a_command_is_in_the_readme(path: tuple[str, ...], command: Any) -> None:
    options = [opt for param in command.params for opt in param.opts
               if opt.startswith("--") and opt not in SHARED_OPTIONS]
    missing = [opt for opt in options if opt not in README]
    assert not missing, f"{' '.join(path)}: README does not mention {missing}"
