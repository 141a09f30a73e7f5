"""Two commits measured side by side in one job (`benchtrack compare A B --rerun`): temporary
worktrees, interleaved worker processes, and the paired verdict (verdicts.sidebyside)."""
