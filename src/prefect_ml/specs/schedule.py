"""Azure ML schedule YAML (``az ml schedule create --file``) and prefect-ml's ``data_asset`` trigger.

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule::

    name: nightly-training
    trigger:
      type: cron                     # or: recurrence, data_asset (prefect-ml)
      expression: "0 2 * * *"
      time_zone: "Pacific Standard Time"   # Windows or IANA name; default UTC
      start_time: "2026-01-01T00:00:00"    # optional, local time in time_zone
      end_time: "2026-12-31T00:00:00"      # optional
    create_job: ./job.yml            # or an inline job mapping

``type: recurrence`` takes ``frequency`` (minute, hour, day, week, month), ``interval`` and an optional
``schedule: {hours, minutes, week_days, month_days}``. prefect-ml adds ``type: data_asset`` (run when a
new version of data asset ``name`` is created, optionally only together with other events: a compound
trigger) and an optional ``retrain:`` section that deploys the ``retrain`` flow instead of the job.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import Problem, ValidationError

WEEK_DAYS = {"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR",
             "saturday": "SA", "sunday": "SU"}
FREQUENCIES = {"minute": "MINUTELY", "hour": "HOURLY", "day": "DAILY", "week": "WEEKLY", "month": "MONTHLY"}


def iana_time_zone(name: str | None) -> str:
    """Map an Azure ``time_zone`` (Windows name such as ``Pacific Standard Time``, or IANA) to IANA.

    Raises:
        ValueError: Unknown time zone.
    """
    if not name or name in ("UTC", "Coordinated Universal Time"):
        return "UTC"
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from tzlocal.windows_tz import win_tz  # Unicode CLDR's Windows -> IANA table

    if name in win_tz:
        return win_tz[name]
    raise ValueError(f"unknown time zone {name!r}; use a Windows name as Azure does ('Pacific Standard Time') "
                     "or an IANA name ('America/Los_Angeles')")


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(default="UTC", description="Time zone of start/end times and fire times: a Windows "
                                                       "name as in Azure or an IANA name.")
    start_time: dt.datetime | None = Field(default=None, description="First possible fire time (local time in "
                                                                     "time_zone unless it has an offset).")
    end_time: dt.datetime | None = Field(default=None, description="No run after this time.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return iana_time_zone(value)

    def localize(self, value: dt.datetime | None) -> dt.datetime | None:
        """``value`` as an aware datetime in :attr:`time_zone`."""
        if value is None:
            return None
        zone = ZoneInfo(self.time_zone)
        return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)

    @model_validator(mode="after")
    def _order(self):
        if self.start_time and self.end_time and self.localize(self.end_time) <= self.localize(self.start_time):
            raise ValueError("end_time must be after start_time")
        return self


class CronTrigger(_Trigger):
    """``type: cron``: a five-field cron ``expression`` evaluated in ``time_zone`` (Prefect's CronSchedule)."""

    type: Literal["cron"]
    expression: str = Field(description="Cron expression (minute hour day-of-month month day-of-week).",
                            examples=["0 2 * * *"])

    @field_validator("expression")
    @classmethod
    def _cron(cls, value: str) -> str:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=value)
        except Exception as exc:  # noqa: BLE001 - pydantic/croniter errors
            raise ValueError(f"invalid cron expression {value!r}: {str(exc).splitlines()[-1]}") from None
        return value


class RecurrencePattern(BaseModel):
    """``schedule:`` of a recurrence trigger: at these hours/minutes, on these week days / month days."""

    model_config = ConfigDict(extra="forbid")

    hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(default_factory=list)
    minutes: list[Annotated[int, Field(ge=0, le=59)]] = Field(default_factory=list)
    week_days: list[str] = Field(default_factory=list, description="monday ... sunday.")
    month_days: list[Annotated[int, Field(ge=1, le=31)]] = Field(default_factory=list)

    @field_validator("hours", "minutes", "week_days", "month_days", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, (int, str)) else value

    @field_validator("week_days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if str(d).lower() not in WEEK_DAYS]
        if bad:
            raise ValueError(f"unknown week day(s) {bad}; use {', '.join(WEEK_DAYS)}")
        return [d.lower() for d in value]


class RecurrenceTrigger(_Trigger):
    """``type: recurrence``: every ``interval`` ``frequency`` units, optionally at fixed hours/minutes/days."""

    type: Literal["recurrence"]
    frequency: Literal["minute", "hour", "day", "week", "month"]
    interval: int = Field(ge=1, description="Number of frequency units between runs.")
    schedule: RecurrencePattern | None = None

    @field_validator("frequency", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class EventRequirement(BaseModel):
    """Another event a compound ``data_asset`` trigger waits for (e.g. a drift alert)."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(description="Event name.", examples=["prefect-ml.model.drift-detected"])
    resource_id: str | None = Field(default=None, description="Only events of this resource (wildcards allowed).",
                                    examples=["prefect-ml.model.breast-cancer-classifier"])


class DataAssetTrigger(BaseModel):
    """prefect-ml's ``type: data_asset``: run when a new version of data asset ``name`` is created.

    With ``also``, the run starts only when every listed event has also happened within
    ``within_seconds`` (a Prefect compound trigger with ``require: all``); the job then trains on the
    newest version.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["data_asset"]
    name: str = Field(description="The data asset whose new versions trigger a run.")
    also: list[EventRequirement] = Field(default_factory=list, description="Events that must also happen.")
    within_seconds: int = Field(default=3600, ge=1, description="Window of a compound trigger, seconds.")


Trigger = Annotated[Union[CronTrigger, RecurrenceTrigger, DataAssetTrigger], Field(discriminator="type")]


class RetrainSettings(BaseModel):
    """prefect-ml's ``retrain:`` section: run the ``retrain`` flow with the job as the training job."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    evaluation: dict[str, Any] = Field(description="Evaluation settings (data, target_column, metric, margin).")
    alias: str = "champion"
    on_busy: Literal["queue", "drop"] = "queue"
    data_input: str | None = None
    job_overrides: list[str] = Field(default_factory=list)


class ScheduleSpec(BaseModel):
    """An Azure ML schedule (plus prefect-ml's extensions)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Schedule (= deployment) name.")
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    is_enabled: bool = True
    trigger: Trigger
    create_job: str | dict[str, Any] = Field(description="A job file (relative to the schedule file) or an "
                                                         "inline job.")
    retrain: RetrainSettings | None = None
    base_path: str | None = Field(default=None, description="Folder of the schedule file.")
    source_file: str | None = None

    def job_file(self) -> Path | None:
        """The job file's absolute path, or ``None`` for an inline job."""
        if not isinstance(self.create_job, str):
            return None
        path = Path(os.path.expanduser(self.create_job))
        return path if path.is_absolute() else Path(self.base_path or ".").resolve() / path


def parse_schedule(data: Any, *, base_path: str | os.PathLike | None = None,
                   source_file: str | None = None) -> ScheduleSpec:
    """Validate a schedule mapping; report every problem at once.

    Raises:
        ValidationError: Invalid fields, a missing job file, or an invalid job.
    """
    from prefect_ml.specs._base import translate_errors

    file = source_file
    if not isinstance(data, dict):
        raise ValidationError([Problem("", "a schedule file must be a mapping with name, trigger and create_job",
                                       None, file)], file=file)
    data = dict(data)
    data["base_path"] = str(Path(base_path or ".").resolve())
    data["source_file"] = source_file
    if isinstance(data.get("create_job"), str) and data["create_job"].startswith("azureml:"):
        raise ValidationError([Problem("create_job", "jobs are not stored by name here; give the job's file "
                                       "(create_job: ./job.yml) or an inline job", data["create_job"], file)],
                              file=file)
    try:
        spec = ScheduleSpec.model_validate(data)
    except PydanticValidationError as exc:
        tags = {"trigger": {"cron", "recurrence", "data_asset"}}
        raise ValidationError(translate_errors(exc, file=file, strip_tags=tags), file=file,
                              title=f"Invalid schedule {file or ''}") from None
    problems = []
    job_file = spec.job_file()
    if job_file is not None and not job_file.is_file():
        problems.append(Problem("create_job", f"job file not found: {job_file}", spec.create_job, file))
    if spec.retrain is not None and job_file is None:
        problems.append(Problem("create_job", "a retrain schedule needs the training job as a file", None, file))
    if problems:
        raise ValidationError(problems, file=file, title=f"Invalid schedule {file or ''}")
    return spec


def load_schedule(path: str | os.PathLike) -> ScheduleSpec:
    """Load and validate a schedule YAML file (relative paths are relative to its folder).

    Raises:
        ValidationError: Missing/unreadable file, bad YAML or invalid content (all problems at once).
    """
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError([Problem("", f"schedule file not found: {file.resolve()}", None, str(path))],
                              file=str(path)) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem("", f"YAML syntax error: {exc}", None, str(path))], file=str(path)) from None
    return parse_schedule(data, base_path=file.resolve().parent, source_file=str(file.resolve()))


__all__ = ["CronTrigger", "DataAssetTrigger", "EventRequirement", "RecurrencePattern", "RecurrenceTrigger",
           "RetrainSettings", "ScheduleSpec", "iana_time_zone", "load_schedule", "parse_schedule"]
