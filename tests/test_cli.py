"""The command line as a person reads it: layouts, defaults and names that can be copied."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import cli, write

pytestmark = pytest.mark.slow


def test_summary_keeps_labels_and_long_values_apart(capsys):
    from prefect_ml.cli.app import _print_summary
    from prefect_ml.jobs import Job

    job = Job(name="j", status="Completed", outputs={"diabetes_mltable": "/data/out", "predictions": "/data/p.csv"},
              registered_models={"model": "m:1"}, registered_data={"features": "f:2"})
    _print_summary(job)
    lines = capsys.readouterr().out.splitlines()
    assert "  output diabetes_mltable  /data/out" in lines
    assert "  output predictions       /data/p.csv" in lines
    assert "  registered model         m:1 (from output model)" in lines
    assert "  registered data          f:2 (from output features)" in lines


def test_job_list_never_cuts_job_names(tmp_path):
    from prefect_ml import MLClient, command

    name = f"a_rather_long_job_name_{uuid.uuid4().hex}"
    assert MLClient().jobs.create_or_update(command(command="echo hi"), name=name).status == "Completed"
    listed = cli("job", "list", env={"COLUMNS": "60"})
    assert listed.returncode == 0 and name in listed.stdout


def test_data_create_infers_the_type_from_a_local_path(tmp_path):
    csv = write(tmp_path / "iris.csv", "a,b\n1,2\n")
    name = f"iris-{uuid.uuid4().hex[:8]}"
    created = cli("data", "create", "--name", name, "--path", str(csv))
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["type"] == "uri_file"
    refused = cli("data", "create", "--name", name, "--path", str(csv), "--type", "uri_folder")
    assert refused.returncode == 2 and "needs a folder, not a file" in refused.stderr


def test_error_messages_are_printed_as_written_not_as_rich_markup():
    """`pip install 'prefect-ml[automl]'` in an error keeps its extra (Rich would take `[automl]` for a tag)."""
    import typer
    from typer.testing import CliRunner

    from prefect_ml.cli.app import handle_errors
    from prefect_ml.exceptions import ConfigurationError, PrefectMLError

    app = typer.Typer()

    @app.command()
    @handle_errors
    def fail(kind: str) -> None:
        cls = ConfigurationError if kind == "config" else PrefectMLError
        raise cls("AutoML jobs need flaml: pip install 'prefect-ml[automl]' [/red]")

    for kind, code in (("config", 2), ("other", 1)):
        result = CliRunner().invoke(app, [kind])
        assert result.exit_code == code
        assert "pip install 'prefect-ml[automl]' [/red]" in result.stderr, result.stderr
