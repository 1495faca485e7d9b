"""Azure ML schedules as Prefect deployments: ``prefect-ml schedule create|list|show|disable|enable|delete``.

A schedule becomes one deployment on a process work pool (default ``local``), tagged ``prefect-ml-schedule``,
named after the schedule, of the flow ``scheduled-job`` (runs ``create_job``) or ``retrain`` (when the schedule
has a ``retrain:`` section):

- ``trigger: {type: cron}`` -> Prefect ``Cron`` schedule with the time zone (DST handled by Prefect's
  scheduler: each local fire time once). With ``start_time``/``end_time`` the cron fields are turned into the
  equivalent ``RRULE`` (two, as a rule set, when day-of-month and day-of-week are both restricted: cron ORs
  them) with ``DTSTART``/``UNTIL`` (Prefect's cron schedules have no start or end).
- ``trigger: {type: recurrence}`` -> Prefect ``RRule`` schedule (``FREQ``, ``INTERVAL``, ``BYHOUR``,
  ``BYMINUTE``, ``BYDAY``, ``BYMONTHDAY``, ``DTSTART``/``UNTIL``). Without ``start_time`` the recurrence is
  anchored at the schedule's creation time (as in Azure); re-creating the schedule keeps that anchor.
- ``trigger: {type: data_asset}`` -> a ``DeploymentEventTrigger`` on ``prefect-ml.data-asset.version-created``
  passing ``{{ event.payload.version }}`` as ``data_version``; with ``also:`` a ``DeploymentCompoundTrigger``
  (``require: all``).

Schedules carry the slug ``prefect-ml``, so re-creating an unchanged schedule updates it in place and the
scheduler's idempotency keys (deployment, time) keep one run per fire time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError
from prefect_ml.specs.schedule import (
    FREQUENCIES,
    WEEK_DAYS,
    CronTrigger,
    DataAssetTrigger,
    RecurrenceTrigger,
    ScheduleSpec,
)

#: Tag on every deployment made from a schedule file.
SCHEDULE_TAG = "prefect-ml-schedule"
#: Work pool used when none is given.
DEFAULT_POOL = "local"
#: Slug of the one schedule a schedule deployment holds.
SCHEDULE_SLUG = "prefect-ml"
_CRON_DAYS = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]


def _rrule_time(value: dt.datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _header(trigger, start: dt.datetime) -> str:
    return f"DTSTART;TZID={trigger.time_zone}:{_rrule_time(start)}"


def _until(trigger) -> str:
    """``;UNTIL=...`` for ``end_time``.

    RFC 5545 wants UNTIL in UTC when DTSTART has a TZID, but Prefect's ``RRuleSchedule.to_rrule`` replaces
    UNTIL's time zone by the schedule's without converting it (an UNTIL of 10:00Z means 10:00 local). So the
    local wall-clock time is written with the ``Z`` suffix; the scheduler then stops at ``end_time`` local.
    """
    end = trigger.localize(trigger.end_time)
    return f";UNTIL={_rrule_time(end)}Z" if end else ""


def _anchor(trigger, anchor: dt.datetime | None) -> dt.datetime:
    """DTSTART: ``start_time``, else ``anchor`` (the creation time), in the trigger's zone, whole seconds.

    Azure anchors a schedule without ``start_time`` at its creation time
    (https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule, ``start_time``).
    """
    start = trigger.localize(trigger.start_time)
    if start is None:
        start = (anchor or dt.datetime.now(dt.timezone.utc)).astimezone(ZoneInfo(trigger.time_zone))
    return start.replace(microsecond=0)


def recurrence_rrule(trigger: RecurrenceTrigger, *, anchor: dt.datetime | None = None) -> str:
    """The RFC 5545 rule of an Azure recurrence trigger.

    Azure: https://learn.microsoft.com/azure/machine-learning/reference-yaml-schedule (``RecurrenceTrigger``).

    Args:
        trigger: The recurrence trigger.
        anchor: When there is no ``start_time``, the time the interval counts from (an aware datetime;
            default: now, i.e. the schedule's creation time, as in Azure). :func:`create_schedule` passes
            the anchor of the schedule it replaces, so re-creating a schedule never moves its fire times.
    """
    start = _anchor(trigger, anchor)
    parts = [f"FREQ={FREQUENCIES[trigger.frequency]}", f"INTERVAL={trigger.interval}"]
    pattern = trigger.schedule
    if pattern is not None:
        if pattern.hours:
            parts.append("BYHOUR=" + ",".join(map(str, sorted(set(pattern.hours)))))
        if pattern.minutes:
            parts.append("BYMINUTE=" + ",".join(map(str, sorted(set(pattern.minutes)))))
        if pattern.week_days:
            parts.append("BYDAY=" + ",".join(WEEK_DAYS[d] for d in pattern.week_days))
        if pattern.month_days:
            parts.append("BYMONTHDAY=" + ",".join(map(str, sorted(set(pattern.month_days)))))
        if pattern.hours or pattern.minutes:
            parts.append("BYSECOND=0")
    return f"{_header(trigger, start)}\nRRULE:{';'.join(parts)}{_until(trigger)}"


def cron_rrule(trigger: CronTrigger, *, anchor: dt.datetime | None = None) -> str:
    """The RFC 5545 rule(s) equivalent to a cron expression, bounded by ``start_time``/``end_time``.

    Fields are expanded by the cron parser Prefect's own ``CronSchedule`` uses. When both day-of-month
    and day-of-week are restricted, cron runs on days matching EITHER (``day_or``, the default of
    Prefect's ``CronSchedule``); one RRULE cannot say that, so the result is a rule set of two RRULEs
    (days of the month, days of the week) sharing ``DTSTART``/``UNTIL``, whose union is the cron's
    times. ``L`` (last day of the month) becomes ``BYMONTHDAY=-1``, ``DAY#N`` (N-th weekday) ``BYDAY=+NDAY``.

    Args:
        trigger: The cron trigger.
        anchor: ``DTSTART`` when there is no ``start_time`` (default: now); see :func:`recurrence_rrule`.
    """
    from prefect._vendor.croniter import croniter  # the parser Prefect's own CronSchedule uses

    fields, nth_weekdays = croniter.expand(trigger.expression)
    minutes, hours, month_days, months, week_days = fields[:5]

    def values(items):
        return ",".join(str(int(v)) for v in items)

    common = [f"BYHOUR={values(hours)}", f"BYMINUTE={values(minutes)}", "BYSECOND=0"]
    if months != ["*"]:
        common.append(f"BYMONTH={values(months)}")
    rules = []
    if month_days != ["*"] or week_days == ["*"]:  # the day-of-month rule (every day when neither is set)
        parts = ["FREQ=DAILY", "INTERVAL=1", *common]
        if month_days != ["*"]:
            parts.append("BYMONTHDAY=" + ",".join("-1" if d == "l" else str(int(d)) for d in month_days))
        rules.append(parts)
    if week_days != ["*"]:  # the day-of-week rule
        days = [f"{n}{_CRON_DAYS[int(d) % 7]}" for d in week_days
                for n in sorted(nth_weekdays.get(d) or [""], key=str)]
        # N-th weekdays (+2FR) are only defined for monthly rules.
        rules.append(["FREQ=MONTHLY" if nth_weekdays else "FREQ=DAILY", "INTERVAL=1", *common,
                      "BYDAY=" + ",".join(days)])
    start = _anchor(trigger, anchor)
    until = _until(trigger)
    return _header(trigger, start) + "".join(f"\nRRULE:{';'.join(parts)}{until}" for parts in rules)


def rrule_anchor(rrule: str) -> dt.datetime | None:
    """The ``DTSTART`` of an RRULE string as an aware datetime, or ``None`` when it has none."""
    import dateutil.rrule
    import dateutil.tz

    if "DTSTART" not in rrule:
        return None
    rules = dateutil.rrule.rrulestr(rrule, forceset=True)._rrule
    start = rules[0]._dtstart if rules else None
    if start is None:
        return None
    return start if start.tzinfo else start.replace(tzinfo=dateutil.tz.UTC)


def prefect_schedules(spec: ScheduleSpec, *, anchor: dt.datetime | None = None) -> list:
    """The Prefect schedules (``prefect.schedules.Schedule``) of a schedule spec; empty for event triggers.

    Args:
        spec: The schedule.
        anchor: Anchor of a recurrence (or bounded cron) without ``start_time``; default: now.
    """
    from prefect.schedules import Cron, RRule

    trigger = spec.trigger
    common = dict(active=spec.is_enabled, slug=SCHEDULE_SLUG)
    if isinstance(trigger, CronTrigger):
        if trigger.start_time is None and trigger.end_time is None:
            return [Cron(trigger.expression, timezone=trigger.time_zone, **common)]
        return [RRule(cron_rrule(trigger, anchor=anchor), timezone=trigger.time_zone, **common)]
    if isinstance(trigger, RecurrenceTrigger):
        return [RRule(recurrence_rrule(trigger, anchor=anchor), timezone=trigger.time_zone, **common)]
    return []


def prefect_triggers(spec: ScheduleSpec) -> list:
    """The deployment triggers of a ``data_asset`` trigger (none for time-based triggers)."""
    from prefect.events import DeploymentCompoundTrigger, DeploymentEventTrigger, EventTrigger

    from prefect_ml.data.events import DATA_ASSET_VERSION_CREATED, data_asset_resource_id

    trigger = spec.trigger
    if not isinstance(trigger, DataAssetTrigger):
        return []
    match = {"prefect.resource.id": data_asset_resource_id(trigger.name)}
    if not trigger.also:
        return [DeploymentEventTrigger(
            name=f"{spec.name}: new version of {trigger.name}", enabled=spec.is_enabled, match=match,
            expect={DATA_ASSET_VERSION_CREATED}, posture="Reactive", threshold=1,
            parameters={"data_asset": trigger.name, "data_version": "{{ event.payload.version }}"})]
    parts = [EventTrigger(match=match, expect={DATA_ASSET_VERSION_CREATED}, posture="Reactive", threshold=1)]
    for requirement in trigger.also:
        parts.append(EventTrigger(match={"prefect.resource.id": requirement.resource_id or "*"},
                                  expect={requirement.event}, posture="Reactive", threshold=1))
    # Which event completes the compound trigger is not known: train on the newest version.
    return [DeploymentCompoundTrigger(
        name=f"{spec.name}: new version of {trigger.name} and {', '.join(r.event for r in trigger.also)}",
        enabled=spec.is_enabled, require="all", within=dt.timedelta(seconds=trigger.within_seconds),
        triggers=parts, parameters={"data_asset": trigger.name, "data_version": None})]


def _deployment_parameters(spec: ScheduleSpec) -> tuple[Any, dict[str, Any]]:
    """Validate the job now (nothing is created when it is invalid); return the flow and its parameters."""
    from prefect_ml.specs import load_job, parse_job

    job_file = spec.job_file()
    if job_file is not None:
        import yaml

        load_job(job_file)  # raises ValidationError with every problem
        job = yaml.safe_load(job_file.read_text(encoding="utf-8"))
        base_path, source = str(job_file.parent), str(job_file)
    else:
        job, base_path, source = dict(spec.create_job), spec.base_path, spec.source_file
        parse_job(job, base_path=base_path, source_file=source)
    if spec.retrain is not None:
        from prefect_ml.flows.retrain import retrain
        from prefect_ml.tasks.retrain import Evaluation

        try:
            Evaluation.model_validate(spec.retrain.evaluation)
        except Exception as exc:  # pydantic error -> our error shape
            raise ValidationError([Problem("retrain.evaluation", str(exc).replace("\n", " "),
                                           spec.retrain.evaluation, spec.source_file)],
                                  file=spec.source_file) from None
        settings = spec.retrain.model_dump()
        return retrain, {"job_file": str(job_file), **settings}
    from prefect_ml.flows.scheduled_job import scheduled_job

    return scheduled_job, {"job": job, "base_path": base_path, "source_file": source, "schedule_name": spec.name}


def create_schedule(spec: ScheduleSpec, *, work_pool: str = DEFAULT_POOL) -> "ScheduleInfo":
    """Create or update the deployment of ``spec`` on ``work_pool``.

    Re-creating a schedule with the same name updates its deployment in place (same schedule slug,
    triggers replaced), so no fire time gets a second run.

    Returns:
        The schedule as now stored.

    Raises:
        ValidationError, NotFoundError: The job (or the retrain settings) is invalid; nothing is created.
    """
    from prefect.deployments.runner import EntrypointType

    from prefect_ml._prefect import prefect_client

    flow, parameters = _deployment_parameters(spec)
    schedules = prefect_schedules(spec, anchor=_existing_anchor(spec.name))
    deployment = flow.to_deployment(
        name=spec.name, schedules=schedules, triggers=prefect_triggers(spec), parameters=parameters,
        tags=[SCHEDULE_TAG], description=spec.description or spec.display_name,
        entrypoint_type=EntrypointType.MODULE_PATH)
    deployment_id = deployment.apply(work_pool_name=work_pool)
    with prefect_client() as client:
        if not schedules:  # the trigger changed from time-based to event-based: drop the old schedule
            for schedule in client.read_deployment_schedules(deployment_id):
                client.delete_deployment_schedule(deployment_id, schedule.id)
        if not spec.is_enabled:
            _set_enabled(client, client.read_deployment(deployment_id), False)
    return get_schedule(spec.name)


def _existing_anchor(name: str) -> dt.datetime | None:
    """``DTSTART`` of the schedule ``name`` already has (so re-creating it keeps its fire times), or ``None``."""
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        try:
            deployment = _find(client, name)
        except NotFoundError:
            return None
    for schedule in deployment.schedules:
        rrule = getattr(schedule.schedule, "rrule", None)
        if schedule.slug == SCHEDULE_SLUG and rrule:
            return rrule_anchor(rrule)
    return None


@dataclass
class ScheduleInfo:
    """A schedule as stored in Prefect.

    Attributes:
        name: The schedule (= deployment) name.
        flow: ``scheduled-job`` or ``retrain``.
        deployment_id: The Prefect deployment's id.
        enabled: Whether its schedules and triggers are active.
        schedules: Each schedule's description (``cron ... (zone)``, ``rrule ...``).
        triggers: Each event trigger's name.
        next_runs: The next scheduled run times (ISO 8601).
        work_pool: The work pool.
    """

    name: str
    flow: str
    deployment_id: str
    enabled: bool
    schedules: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    next_runs: list[str] = field(default_factory=list)
    work_pool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _find(client, name: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, DeploymentFilterTags

    found = client.read_deployments(deployment_filter=DeploymentFilter(
        name=DeploymentFilterName(any_=[name]), tags=DeploymentFilterTags(all_=[SCHEDULE_TAG])))
    if not found:
        known = [d.name for d in client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[SCHEDULE_TAG])))]
        raise NotFoundError(f"Schedule {name!r} not found. Known schedules: {', '.join(sorted(known)) or 'none'}. "
                            "Create one with `prefect-ml schedule create --file schedule.yml`.")
    return found[0]


def _describe(schedule) -> str:
    inner = schedule.schedule
    if getattr(inner, "cron", None):
        return f"cron {inner.cron} ({inner.timezone})"
    if getattr(inner, "rrule", None):
        return "rrule " + inner.rrule.replace("\n", " ")
    return f"every {inner.interval}"


def _info(client, deployment) -> ScheduleInfo:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    automations = client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=5)
    flow = client.read_flow(deployment.flow_id)
    active = [s.active for s in deployment.schedules] + [a.enabled for a in automations]
    return ScheduleInfo(
        name=deployment.name, flow=flow.name, deployment_id=str(deployment.id),
        enabled=not deployment.paused and all(active) and bool(active),
        schedules=[_describe(s) for s in deployment.schedules], triggers=[a.name for a in automations],
        next_runs=[r.expected_start_time.isoformat() for r in runs if r.expected_start_time],
        work_pool=deployment.work_pool_name)


def get_schedule(name: str) -> ScheduleInfo:
    """Schedule ``name``.

    Raises:
        NotFoundError: No such schedule (the message lists the known ones).
    """
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        return _info(client, _find(client, name))


def list_schedules() -> list[ScheduleInfo]:
    """Every schedule created by prefect-ml, by name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        deployments = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[SCHEDULE_TAG])))
        return sorted((_info(client, d) for d in deployments), key=lambda s: s.name)


def _set_enabled(client, deployment, enabled: bool) -> None:
    for schedule in deployment.schedules:
        client.update_deployment_schedule(deployment.id, schedule.id, active=enabled)
    for automation in client.read_resource_related_automations(f"prefect.deployment.{deployment.id}"):
        (client.resume_automation if enabled else client.pause_automation)(automation.id)


def set_schedule_enabled(name: str, enabled: bool) -> ScheduleInfo:
    """Enable or disable schedule ``name``: its time schedules and its event triggers.

    Disabling deletes the runs it had scheduled in the future (Prefect does so for inactive schedules);
    enabling lets the scheduler create them again.

    Raises:
        NotFoundError: No such schedule.
    """
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        deployment = _find(client, name)
        _set_enabled(client, deployment, enabled)
        return _info(client, client.read_deployment(deployment.id))


def delete_schedule(name: str) -> None:
    """Delete schedule ``name``: its deployment, triggers and scheduled (not yet started) runs.

    Raises:
        NotFoundError: No such schedule.
    """
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        deployment = _find(client, name)
        client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
        client.delete_deployment(deployment.id)


__all__ = ["DEFAULT_POOL", "SCHEDULE_TAG", "ScheduleInfo", "create_schedule", "cron_rrule", "delete_schedule",
           "get_schedule", "list_schedules", "prefect_schedules", "prefect_triggers", "recurrence_rrule",
           "rrule_anchor",
           "set_schedule_enabled"]
