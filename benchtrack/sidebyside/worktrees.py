"""Both commits on disk at once: temporary git worktrees, removed afterwards whatever happens
(an error, Ctrl-C), so a side-by-side comparison never leaves checkouts or stale worktree
entries behind."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchtrack.errors import UsageError

WORK_TREE = "WORKTREE"  # the working copy as it is, uncommitted changes included


class GitMissingError(UsageError):
    """No git on this machine."""


@dataclass(frozen=True)
class Checkout:
    ref: str  # as the user named it
    commit: str  # full sha, or WORK_TREE
    root: Path  # the tree's top folder

    @property
    def label(self) -> str:
        return "work tree" if self.commit == WORK_TREE else f"{self.ref} ({self.commit[:10]})"


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GitMissingError("git is not installed: side-by-side comparison needs it") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UsageError(f"git {' '.join(args[:2])}: {last}")
    return done.stdout.strip()


def repository_root(start: Path) -> Path:
    try:
        return Path(_git(start, "rev-parse", "--show-toplevel"))
    except GitMissingError:
        raise
    except UsageError:
        raise UsageError(f"{start} is not inside a git repository: --rerun checks commits out of one") from None


def resolve_commit(repo: Path, ref: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except UsageError:
        raise UsageError(f"unknown git ref {ref!r}") from None


@contextlib.contextmanager
def checkouts(repo: Path, refs: Sequence[str | None]) -> Iterator[list[Checkout]]:
    """One checkout per ref (None: the work tree itself, as it is). Each commit gets a detached
    worktree in a temporary folder; all are removed on the way out."""
    resolved = [(ref, resolve_commit(repo, ref)) if ref is not None else (None, WORK_TREE) for ref in refs]
    holder = Path(tempfile.mkdtemp(prefix="benchtrack-rerun-"))
    made: list[Path] = []
    try:
        found = []
        for index, (ref, commit) in enumerate(resolved):
            if ref is None:
                found.append(Checkout("work tree", WORK_TREE, repo))
                continue
            path = holder / f"side{index}-{commit[:10]}"
            made.append(path)  # before adding: an interrupted add still gets removed
            _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
            found.append(Checkout(ref, commit, path))
        yield found
    finally:
        for path in made:
            with contextlib.suppress(UsageError):
                _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(holder, ignore_errors=True)
        with contextlib.suppress(UsageError):
            _git(repo, "worktree", "prune")  # after the folders are gone: drops any entry left half-made
