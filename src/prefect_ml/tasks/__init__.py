"""Prefect tasks: the steps of a training job's lifecycle.

Each module holds plain functions (testable without an engine) and the Prefect tasks
that wrap them: ``snapshot`` (code snapshot), ``inputs`` (input resolution), ``outputs``
(output locations, upload, registration), ``execution`` (running the command) and
``tracking`` (the MLflow run and the job's record).
"""
