"""`benchtrack report`: any document benchtrack writes (a run, a comparison, a watch, a profile,
or an MLflow run id whose report was logged) as Markdown, self-contained HTML or JSON."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from benchtrack.cli import EXIT_OK, TrackingUriOption, app, maps_errors
from benchtrack.errors import UsageError

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportFormat(str, Enum):
    md = "md"
    html = "html"
    json = "json"


@app.command("report")
@maps_errors
def report_command(
    source: Annotated[str, typer.Argument(
        metavar="RUN_OR_FILE",
        help="A JSON file from `benchtrack run|compare|watch --format json`, a profile (MemoryProfiler.save_json), "
             "or an MLflow run id (a suite's parent run or one of its benchmark runs).")],
    output_format: Annotated[ReportFormat, typer.Option("--format", help="md (CI step summary, PR comment), "
                                                        "html (one self-contained file) or json (benchtrack.report/1).")
                             ] = ReportFormat.md,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    append: Annotated[bool, typer.Option("--append", help="Append to --output (e.g. \"$GITHUB_STEP_SUMMARY\").")] = False,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Render a run, comparison, watch or profile as a report.

    Example: benchtrack report run.json --format md --output "$GITHUB_STEP_SUMMARY" --append
    """
    from benchtrack.report.model import build_report, parse_document
    from benchtrack.report.render import render

    if append and output is None:
        raise UsageError("--append needs --output")
    text, where = _read_source(source, tracking_uri)
    report = build_report(parse_document(text, where), where)
    rendered = render(report, output_format.value)
    if output is None:
        typer.echo(rendered, nl=False)
    else:
        try:
            with output.open("a" if append else "w", encoding="utf-8") as handle:
                handle.write(rendered)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    raise typer.Exit(EXIT_OK)


def _read_source(source: str, tracking_uri: str | None) -> tuple[str, str]:
    """(JSON text, what it is called in messages): a file, else a run id in the store."""
    path = Path(source)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    if not _RUN_ID.match(source):
        raise UsageError(f"{source!r} is neither a file nor an MLflow run id")
    from benchtrack.tracking.reports import load_report
    from benchtrack.tracking.store import MlflowStore
    from benchtrack.tracking.uri import resolve_tracking_uri

    return load_report(MlflowStore(resolve_tracking_uri(tracking_uri)), source), f"run {source}"
