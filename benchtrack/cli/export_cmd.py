"""`benchtrack export --prometheus PATH`: the latest verdicts of every suite for Prometheus,
through node-exporter's textfile collector."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from benchtrack.cli import EXIT_OK, TrackingUriOption, app, maps_errors
from benchtrack.errors import UsageError


@app.command("export")
@maps_errors
def export_command(
    prometheus: Annotated[Path, typer.Option("--prometheus", help="Write the Prometheus text format here "
                                             "(e.g. /var/lib/node_exporter/textfile/benchtrack.prom).")],
    from_file: Annotated[Path | None, typer.Option("--from", help="Export this run JSON (`benchtrack run --format json`) "
                                                   "instead of the store's newest report of every suite.")] = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Export the latest verdicts and wall times per suite as Prometheus metrics (benchtrack_*).

    The file is written beside its final name and renamed into place, as the textfile collector
    requires. Example: benchtrack export --prometheus /var/lib/node_exporter/textfile/benchtrack.prom
    """
    from benchtrack.report.prometheus import render_prometheus

    reports = _from_file(from_file) if from_file is not None else _from_store(tracking_uri)
    text = render_prometheus(reports)
    _write_atomically(prometheus, text)
    typer.echo(f"wrote {len(reports)} report(s) to {prometheus}", err=True)
    raise typer.Exit(EXIT_OK)


def _from_file(path: Path) -> list[dict[str, Any]]:
    from benchtrack.report.model import build_report, parse_document

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    return [build_report(parse_document(text, str(path)), str(path))]


def _from_store(tracking_uri: str | None) -> list[dict[str, Any]]:
    from benchtrack.report.model import build_report, parse_document
    from benchtrack.tracking.reports import latest_reports
    from benchtrack.tracking.store import MlflowStore
    from benchtrack.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    return [build_report(parse_document(text, f"a report in {uri}"), f"a report in {uri}")
            for text in latest_reports(MlflowStore(uri))]


def _write_atomically(path: Path, text: str) -> None:
    """A temporary file in the same folder, renamed over the target: readers never see half a file."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            Path(temporary).chmod(0o644)  # the collector often runs as another user
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
