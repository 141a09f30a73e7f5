"""Runs a GitHub Actions job of .github/workflows/benchtrack.yml here, step by step, so a test can
play the whole CI story (main, main again, a pull request) on a real repository and store.

What it stands in for, and how: `${{ }}` expressions and `if:` conditions are evaluated over the
same contexts GitHub gives (github, env, secrets, steps) with GitHub's operators; `run:` steps
run in bash with GitHub's flags and files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_ENV is not
used by the workflow); actions/checkout and actions/setup-python are the repository and Python
already here; actions/cache/restore and save copy the paths into and out of a folder per key
(restore picks the exact key, else the newest key starting with a restore key; a saved key is
immutable, as on GitHub); upload-artifact copies its paths. Steps named in ``skip`` (the
installs) are skipped: the test's environment has benchtrack installed already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "benchtrack.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_TOKEN = re.compile(r"'(?:[^']|'')*'|&&|\|\||!=|==|!|[A-Za-z_][\w.-]*(?:\(\))?|\d+|\s+|[()]")


def load_workflow(path: Path = WORKFLOW) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


class Context:
    """A GitHub context: attribute access, missing keys are '' (GitHub's null in comparisons)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def lookup(self, path: list[str]) -> Any:
        value: Any = self._values
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                return ""
            value = value[part]
        return value


def evaluate(expression: str, contexts: Mapping[str, Context], status: Mapping[str, bool]) -> Any:
    """A GitHub expression with literals, context paths, ==, !=, !, &&, || and the status functions."""
    python: list[str] = []
    values: dict[str, Any] = {}
    for token in _TOKEN.findall(expression):
        if token.isspace():
            continue
        if token.startswith("'"):
            python.append(repr(token[1:-1].replace("''", "'")))
        elif token in ("&&", "||", "!", "==", "!=", "(", ")"):
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(token, token))
        elif token.endswith("()"):
            python.append(repr(status[token[:-2]]))
        elif token.isdigit():
            python.append(token)
        elif token in ("true", "false"):
            python.append(repr(token == "true"))  # noqa: S105 - a YAML literal, not a password
        else:
            root, *path = token.split(".")
            name = f"v{len(values)}"
            values[name] = contexts[root].lookup(path)
            python.append(name)
    if "".join(_TOKEN.findall(expression)).strip() != expression.strip():
        raise ValueError(f"cannot evaluate {expression!r}")
    return eval(" ".join(python), {"__builtins__": {}}, values)  # noqa: S307 - tokens checked above


def substitute(text: str, contexts: Mapping[str, Context], status: Mapping[str, bool]) -> str:
    return EXPRESSION.sub(lambda m: str(evaluate(m.group(1), contexts, status)), text)


@dataclass
class JobResult:
    outcomes: dict[str, str]  # step name or id -> success | failure | skipped
    summary: str
    restored_key: str | None
    restored_db_bytes: bytes | None
    logs: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return "failure" not in self.outcomes.values()


@dataclass
class WorkflowRunner:
    workspace: Path  # the checked-out repository
    cache: Path  # the stand-in for GitHub's cache service
    artifacts: Path
    event: Mapping[str, Any]  # the github context
    secrets: Mapping[str, str] = field(default_factory=dict)
    skip: frozenset[str] = frozenset({"install"})
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def run_job(self, name: str, workflow: Mapping[str, Any] | None = None) -> JobResult:
        workflow = workflow or load_workflow()
        job = workflow["jobs"][name]
        base = {"secrets": Context(self.secrets), "github": Context(self.event)}
        env = {k: substitute(str(v), base, _status(True)) for k, v in workflow.get("env", {}).items()}
        steps_context: dict[str, Any] = {}
        result = JobResult({}, "", None, None)
        summary_parts: list[str] = []
        ok = True
        for index, step in enumerate(job["steps"]):
            label = step.get("id") or step.get("name") or f"step {index}"
            contexts = {**base, "env": Context(env), "steps": Context(steps_context)}
            condition = str(step.get("if", "success()"))
            condition = EXPRESSION.sub(lambda m: m.group(1), condition)
            if "success()" not in condition and not re.search(r"always\(\)|failure\(\)|cancelled\(\)", condition):
                condition = f"success() && ({condition})"
            if label in self.skip or not evaluate(condition, contexts, _status(ok)):
                result.outcomes[label] = "skipped"
                if "id" in step:
                    steps_context[step["id"]] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
                continue
            step_env = {**env, **{k: substitute(str(v), contexts, _status(ok)) for k, v in step.get("env", {}).items()}}
            outputs, summary, passed = self._run_step(step, contexts, step_env, _status(ok), result)
            summary_parts.append(summary)
            result.outcomes[label] = "success" if passed else "failure"
            if "id" in step:
                outcome = "success" if passed else "failure"
                steps_context[step["id"]] = {"outcome": outcome, "conclusion": outcome, "outputs": outputs}
            ok = ok and passed
        result.summary = "".join(summary_parts)
        return result

    def _run_step(self, step: Mapping[str, Any], contexts: Mapping[str, Context], env: dict[str, str],
                  status: Mapping[str, bool], result: JobResult) -> tuple[dict[str, str], str, bool]:
        inputs = {k: substitute(str(v), contexts, status) for k, v in step.get("with", {}).items()}
        uses = str(step.get("uses", ""))
        if uses.startswith(("actions/checkout@", "actions/setup-python@")):
            return {}, "", True
        if uses.startswith("actions/cache/restore@"):
            return self._restore(inputs, result), "", True
        if uses.startswith("actions/cache/save@"):
            return {}, "", self._save(inputs)
        if uses.startswith("actions/upload-artifact@"):
            return {}, "", self._upload(inputs)
        if uses:
            raise AssertionError(f"the workflow runner does not know {uses}")
        return self._shell(substitute(str(step["run"]), contexts, status), env, result)

    def _shell(self, script: str, env: dict[str, str], result: JobResult) -> tuple[dict[str, str], str, bool]:
        files = self.workspace.parent / "runner-files"
        files.mkdir(exist_ok=True)
        output, summary = files / "output", files / "summary"
        output.write_text("", encoding="utf-8")
        summary.write_text("", encoding="utf-8")
        event = self.event
        github_env = {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": str(event["event_name"]),
            "GITHUB_RUN_ID": str(event["run_id"]), "GITHUB_BASE_REF": str(event.get("base_ref", "")),
            "GITHUB_SHA": str(event.get("sha", "")), "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
        }
        full_env = {**os.environ, **self.extra_env, **env, **github_env}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=self.workspace,
                              env=full_env, capture_output=True, text=True, check=False)
        result.logs.append(f"$ {script}\n[exit {done.returncode}]\n{done.stdout}\n{done.stderr}")
        outputs = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines() if "=" in line)
        return outputs, summary.read_text(encoding="utf-8"), done.returncode == 0

    def _keys(self) -> list[Path]:
        return sorted((p for p in self.cache.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def _restore(self, inputs: Mapping[str, str], result: JobResult) -> dict[str, str]:
        wanted = inputs["key"]
        prefixes = [line.strip() for line in inputs.get("restore-keys", "").splitlines() if line.strip()]
        entries = self._keys()
        found = next((p for p in entries if p.name == wanted), None)
        for prefix in prefixes:
            found = found or next((p for p in entries if p.name.startswith(prefix)), None)
        if found is None:
            return {"cache-hit": "false"}
        shutil.copytree(found, self.workspace, dirs_exist_ok=True)
        result.restored_key = found.name
        db = self.workspace / "mlflow.db"
        result.restored_db_bytes = db.read_bytes() if db.exists() else None
        return {"cache-hit": str(found.name == wanted).lower(), "cache-matched-key": found.name}

    def _save(self, inputs: Mapping[str, str]) -> bool:
        target = self.cache / inputs["key"]
        if target.exists():
            return True  # GitHub keeps the first entry of a key and warns
        target.mkdir(parents=True)
        for line in inputs["path"].splitlines():
            source = self.workspace / line.strip()
            if not line.strip() or not source.exists():
                continue
            if source.is_dir():
                shutil.copytree(source, target / line.strip())
            else:
                shutil.copy2(source, target / line.strip())
        return True

    def _upload(self, inputs: Mapping[str, str]) -> bool:
        target = self.artifacts / inputs["name"]
        target.mkdir(parents=True, exist_ok=True)
        for line in inputs["path"].splitlines():
            source = self.workspace / line.strip()
            if line.strip() and source.exists():
                if source.is_dir():
                    shutil.copytree(source, target / source.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target / source.name)
        return True


def _status(ok: bool) -> dict[str, bool]:
    return {"success": ok, "failure": not ok, "always": True, "cancelled": False}
