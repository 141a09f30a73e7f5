"""`benchtrack ui`: the MLflow UI on the store `benchtrack run` logs to, stopped whole (server and
workers) on Ctrl-C, SIGTERM or exit."""

from __future__ import annotations

from typing import Annotated

import typer

from benchtrack.cli import EXIT_OK, TrackingUriOption, app, maps_errors
from benchtrack.errors import UsageError


@app.command("ui")
@maps_errors
def ui_command(
    tracking_uri: TrackingUriOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1-65535, free).")] = 5000,
) -> None:
    """Start the MLflow UI on the same store `benchtrack run` logs to; prints its URL once it answers.

    Example: benchtrack ui --port 5000, then open http://127.0.0.1:5000
    """
    from benchtrack.tracking.store import quiet_mlflow_environment
    from benchtrack.tracking.ui_server import serve_ui
    from benchtrack.tracking.uri import is_http, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    if is_http(uri):
        raise UsageError(f"{uri} is already a tracking server: open it in a browser")
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise UsageError(f"no store at {db} yet: run `benchtrack run` first")
    quiet_mlflow_environment()

    def announce(url: str) -> None:
        typer.echo(f"MLflow UI for {uri} at {url} (Ctrl+C to stop)", err=True)

    serve_ui(uri, host, port, announce)
    raise typer.Exit(EXIT_OK)
