"""The ``prefect-ml`` command line."""

from __future__ import annotations

import os


def main() -> None:
    """Console-script entry point: keep Prefect's console quiet, then run the Typer app."""
    from prefect_ml import settings

    settings.apply_quiet_defaults()
    # The CLI prints its own output; Prefect's console log lines would duplicate it.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from prefect_ml.cli.app import app

    app()
