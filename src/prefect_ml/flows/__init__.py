"""Prefect flows: the entrypoints of prefect-ml's job types (thin orchestration of tasks)."""

from prefect_ml.flows.command_job import command_job

__all__ = ["command_job"]
