"""Azure schedule YAML -> Prefect schedules and triggers; the schedule CLI against the real server."""

from __future__ import annotations

import asyncio
import os
import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import pytest

from helpers import REPO, cli, wait_for, write

NY = ZoneInfo("America/New_York")


def _spec(tmp_path, text: str):
    from prefect_ml.specs.schedule import load_schedule

    return load_schedule(write(tmp_path / "schedule.yml", text))


def _server_dates(schedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Fire times as Prefect's scheduler service computes them (server-side schedule objects)."""
    from prefect.server.schemas.schedules import CronSchedule, RRuleSchedule

    if schedule.cron:
        server = CronSchedule(cron=schedule.cron, timezone=schedule.timezone, day_or=schedule.day_or)
    else:
        server = RRuleSchedule(rrule=schedule.rrule, timezone=schedule.timezone)
    return asyncio.run(server.get_dates(n=1000, start=start, end=end))


JOB = f"create_job: {REPO / 'examples' / 'jobs' / 'breast-cancer' / 'job.yml'}\n"


def test_cron_in_a_windows_time_zone_fires_each_local_time_once_across_dst(tmp_path):
    from prefect_ml.deployments.schedules import prefect_schedules

    spec = _spec(tmp_path, "name: nightly\ntrigger:\n  type: cron\n  expression: '30 1 * * *'\n"
                           "  time_zone: Eastern Standard Time\n" + JOB)
    (schedule,) = prefect_schedules(spec)
    assert (schedule.cron, schedule.timezone, schedule.slug) == ("30 1 * * *", "America/New_York", "prefect-ml")
    # 2026-11-01 01:30 happens twice in New York (clocks go back at 02:00 EDT): one run only.
    dates = _server_dates(schedule, dt.datetime(2026, 10, 30, tzinfo=NY), dt.datetime(2026, 11, 3, 12, tzinfo=NY))
    local = [dt.datetime(*d.astimezone(NY).timetuple()[:6]) for d in dates]
    assert local == [dt.datetime(2026, 10, d, 1, 30) for d in (30, 31)] + \
        [dt.datetime(2026, 11, d, 1, 30) for d in (1, 2, 3)]

    hourly = _spec(tmp_path, "name: hourly\ntrigger: {type: cron, expression: '0 * * * *', "
                             "time_zone: America/New_York}\n" + JOB)
    (schedule,) = prefect_schedules(hourly)
    for start in (dt.datetime(2026, 11, 1, tzinfo=NY), dt.datetime(2026, 3, 8, tzinfo=NY)):  # fall back, spring on
        dates = _server_dates(schedule, start, start + dt.timedelta(hours=5, minutes=30))
        walls = [d.astimezone(NY).strftime("%H:%M") for d in dates]
        assert len(walls) == len(set(walls)), walls  # no local fire time twice
        assert len(set(dates)) == len(dates)
        expected = ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]
        if start.month == 3:
            expected.remove("02:00")  # 02:00-03:00 does not exist on 2026-03-08
        assert walls == expected


def test_recurrence_becomes_an_rrule_with_hours_minutes_and_week_days(tmp_path):
    from prefect_ml.deployments.schedules import prefect_schedules

    spec = _spec(tmp_path, """
name: twice-on-weekdays
trigger:
  type: recurrence
  frequency: week
  interval: 1
  schedule: {hours: [9, 17], minutes: [30], week_days: [monday, wednesday]}
  start_time: "2026-10-26T00:00:00"
  end_time: "2026-11-04T12:00:00"
  time_zone: Pacific Standard Time
""" + JOB)
    (schedule,) = prefect_schedules(spec)
    assert schedule.timezone == "America/Los_Angeles"
    assert "FREQ=WEEKLY;INTERVAL=1;BYHOUR=9,17;BYMINUTE=30;BYDAY=MO,WE" in schedule.rrule
    la = ZoneInfo("America/Los_Angeles")
    dates = _server_dates(schedule, dt.datetime(2026, 10, 20, tzinfo=la), dt.datetime(2026, 11, 30, tzinfo=la))
    local = [d.astimezone(la).strftime("%a %d %H:%M") for d in dates]
    # DST ends 2026-11-01 in Los Angeles: still 09:30 and 17:30 local; nothing after end_time (12:00 local).
    assert local == ["Mon 26 09:30", "Mon 26 17:30", "Wed 28 09:30", "Wed 28 17:30",
                     "Mon 02 09:30", "Mon 02 17:30", "Wed 04 09:30"]


def test_recurrence_without_start_time_is_anchored_at_creation_time(tmp_path):
    """Azure anchors it at the creation time; an explicit anchor (the existing schedule's) is kept."""
    from prefect_ml.deployments.schedules import prefect_schedules, rrule_anchor

    spec = _spec(tmp_path, "name: every-2-hours\ntrigger: {type: recurrence, frequency: hour, interval: 2, "
                           "time_zone: Eastern Standard Time}\n" + JOB)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    (schedule,) = prefect_schedules(spec)
    after = dt.datetime.now(dt.timezone.utc)
    anchor = rrule_anchor(schedule.rrule)
    assert before <= anchor <= after and anchor.utcoffset() == NY.utcoffset(anchor.replace(tzinfo=None))
    start = anchor + dt.timedelta(minutes=1)
    dates = _server_dates(schedule, start, start + dt.timedelta(hours=6, minutes=1))
    assert dates == [anchor + dt.timedelta(hours=h) for h in (2, 4, 6)]  # every 2 h from creation, not midnight

    earlier = dt.datetime(2026, 3, 1, 8, 17, 5, tzinfo=dt.timezone.utc)
    (kept,) = prefect_schedules(spec, anchor=earlier)
    assert rrule_anchor(kept.rrule) == earlier
    assert kept.rrule.startswith("DTSTART;TZID=America/New_York:20260301T031705\n")
    with_start = _spec(tmp_path, "name: s\ntrigger: {type: recurrence, frequency: day, interval: 1, "
                                 "start_time: '2026-05-01T06:00:00'}\n" + JOB)
    (explicit,) = prefect_schedules(with_start, anchor=earlier)  # start_time wins over any anchor
    assert rrule_anchor(explicit.rrule) == dt.datetime(2026, 5, 1, 6, tzinfo=dt.timezone.utc)


def test_cron_with_start_and_end_is_bounded(tmp_path):
    from prefect_ml.deployments.schedules import prefect_schedules

    spec = _spec(tmp_path, "name: bounded\ntrigger: {type: cron, expression: '0 6 * * 1-5', "
                           "start_time: '2026-06-03T00:00:00', end_time: '2026-06-09T12:00:00'}\n" + JOB)
    (schedule,) = prefect_schedules(spec)
    dates = _server_dates(schedule, dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc),
                          dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc))
    assert [d.strftime("%a %d %H:%M") for d in dates] == ["Wed 03 06:00", "Thu 04 06:00", "Fri 05 06:00",
                                                         "Mon 08 06:00", "Tue 09 06:00"]


def test_bounded_cron_restricting_day_of_month_and_day_of_week_fires_on_either(tmp_path):
    """Cron ORs day-of-month and day-of-week (Prefect's CronSchedule ``day_or``); the bounded form does too."""
    from prefect.server.schemas.schedules import CronSchedule

    from prefect_ml.deployments.schedules import prefect_schedules

    spec = _spec(tmp_path, "name: audit\ntrigger: {type: cron, expression: '0 9 13 * fri', time_zone: "
                           "America/New_York, start_time: '2026-01-01T00:00:00', end_time: '2026-02-06T09:00:00'}\n"
                 + JOB)
    (schedule,) = prefect_schedules(spec)
    dates = _server_dates(schedule, dt.datetime(2025, 12, 1, tzinfo=NY), dt.datetime(2026, 3, 1, tzinfo=NY))
    # January 2026: every Friday and Tuesday the 13th, at 09:00 New York time, up to end_time (inclusive).
    assert [d.astimezone(NY).strftime("%a %d.%m %H:%M") for d in dates] == [
        "Fri 02.01 09:00", "Fri 09.01 09:00", "Tue 13.01 09:00", "Fri 16.01 09:00", "Fri 23.01 09:00",
        "Fri 30.01 09:00", "Fri 06.02 09:00"]
    cron = CronSchedule(cron="0 9 13 * fri", timezone="America/New_York", day_or=True)
    expected = asyncio.run(cron.get_dates(n=100, start=dt.datetime(2026, 1, 1, tzinfo=NY),
                                          end=dt.datetime(2026, 2, 6, 9, tzinfo=NY)))
    assert dates == expected
    for expression in ("30 6 L * mon", "0 12 * * 5#2", "15 2,14 1,15 6-8 1-5"):  # last day, 2nd Friday, months
        bounded = _spec(tmp_path, f"name: b\ntrigger: {{type: cron, expression: '{expression}', time_zone: UTC, "
                                  "start_time: '2026-01-01T00:00:00', end_time: '2026-12-31T00:00:00'}\n" + JOB)
        (schedule,) = prefect_schedules(bounded)
        utc = dt.timezone.utc
        window = dt.datetime(2026, 1, 1, tzinfo=utc), dt.datetime(2026, 12, 31, tzinfo=utc)
        assert _server_dates(schedule, dt.datetime(2025, 6, 1, tzinfo=utc), dt.datetime(2027, 6, 1, tzinfo=utc)) \
            == asyncio.run(CronSchedule(cron=expression, timezone="UTC").get_dates(n=1000, start=window[0],
                                                                                end=window[1])), expression


def test_invalid_schedules_report_every_problem(tmp_path):
    from prefect_ml.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        _spec(tmp_path, "name: bad\ntrigger: {type: cron, expression: '61 * * * *', time_zone: Mars Standard Time}\n"
                        "create_job: ./missing.yml\n")
    text = str(caught.value)
    assert "invalid cron expression" in text and "unknown time zone 'Mars Standard Time'" in text
    with pytest.raises(ValidationError, match="job file not found"):
        _spec(tmp_path, "name: bad\ntrigger: {type: recurrence, frequency: day, interval: 1}\n"
                        "create_job: ./missing.yml\n")
    with pytest.raises(ValidationError, match="frequency"):
        _spec(tmp_path, "name: bad\ntrigger: {type: recurrence, frequency: fortnight, interval: 1}\n" + JOB)


def test_data_asset_triggers_become_event_and_compound_triggers(tmp_path):
    from prefect.events import DeploymentCompoundTrigger, DeploymentEventTrigger

    from prefect_ml.deployments.schedules import prefect_schedules, prefect_triggers

    spec = _spec(tmp_path, "name: on-data\ntrigger: {type: data_asset, name: bc-train}\n" + JOB)
    assert prefect_schedules(spec) == []
    (trigger,) = prefect_triggers(spec)
    assert isinstance(trigger, DeploymentEventTrigger)
    assert trigger.match.model_dump() == {"prefect.resource.id": "prefect-ml.data-asset.bc-train"}
    assert trigger.expect == {"prefect-ml.data-asset.version-created"}
    assert trigger.parameters == {"data_asset": "bc-train", "data_version": "{{ event.payload.version }}"}

    compound = _spec(tmp_path, """
name: on-data-and-drift
trigger:
  type: data_asset
  name: bc-train
  also: [{event: prefect-ml.model.drift-detected, resource_id: prefect-ml.model.bc}]
  within_seconds: 600
""" + JOB)
    (trigger,) = prefect_triggers(compound)
    assert isinstance(trigger, DeploymentCompoundTrigger) and trigger.require == "all"
    assert [t.expect for t in trigger.triggers] == [{"prefect-ml.data-asset.version-created"},
                                                    {"prefect-ml.model.drift-detected"}]
    assert trigger.within == dt.timedelta(seconds=600)


# ------------------------------------------------------------------ against the real server
def _cli(*args: str):
    """``prefect-ml ARGS`` in this process (typer's CliRunner): same code path as the console script."""
    from typer.testing import CliRunner

    from prefect_ml.cli.app import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _cli_json(*args: str):
    result = _cli(*args, "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_schedule_cli_creates_lists_disables_enables_and_deletes(tmp_path):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from prefect_ml._prefect import prefect_client

    name = f"hourly-{uuid.uuid4().hex[:6]}"
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    schedule_file = write(tmp_path / "schedule.yml", f"""
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: {name}
trigger:
  type: recurrence
  frequency: hour
  interval: 1
  time_zone: UTC
{JOB}""")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    created = _cli_json("schedule", "create", "--file", str(schedule_file), "--pool", pool)
    assert created["flow"] == "scheduled-job" and created["enabled"] is True
    assert created["schedules"][0].startswith("rrule DTSTART;TZID=UTC")
    # Anchored at the creation time (Azure's default without start_time), not at midnight.
    anchor = dt.datetime.strptime(created["schedules"][0].split(":", 1)[1][:15], "%Y%m%dT%H%M%S")
    assert before <= anchor <= before + dt.timedelta(seconds=60)

    def scheduled_times():
        with prefect_client() as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[created["deployment_id"]])))
        return [r.expected_start_time for r in runs if r.state_type.value == "SCHEDULED"]

    first = wait_for(scheduled_times, timeout=60, what="runs scheduled by the server's scheduler")
    assert all((t.replace(tzinfo=None) - anchor).total_seconds() % 3600 == 0 for t in first)
    # Re-creating the unchanged schedule (later) keeps its anchor and one run per fire time.
    again = _cli_json("schedule", "create", "--file", str(schedule_file), "--pool", pool)
    assert again["schedules"] == created["schedules"] and again["deployment_id"] == created["deployment_id"]
    wait_for(lambda: len(scheduled_times()) >= len(first), timeout=60, what="runs after re-creating")
    times = scheduled_times()
    assert len(times) == len(set(times)) and set(first) <= set(times)

    listed = _cli_json("schedule", "list")
    assert name in [s["name"] for s in listed]
    disabled = _cli_json("schedule", "disable", name)
    assert disabled["enabled"] is False
    wait_for(lambda: not scheduled_times(), timeout=30, what="future runs deleted when disabled")
    assert _cli_json("schedule", "enable", name)["enabled"] is True
    shown = _cli_json("schedule", "show", name)
    assert shown["work_pool"] == pool
    table = _cli("schedule", "show", name)
    assert table.exit_code == 0 and f"pool {pool}" in table.stdout
    assert _cli("schedule", "delete", name).exit_code == 0
    missing = _cli("schedule", "show", name)
    assert missing.exit_code == 2 and "not found" in missing.stderr
    # The console script itself: exit code 2 and the message on stderr in a real process.
    process = cli("schedule", "show", name)
    assert process.returncode == 2 and "not found" in process.stderr


@pytest.mark.slow
def test_scheduled_job_flow_runs_the_job_with_the_triggering_data_version(tmp_path):
    from prefect_ml.client import MLClient
    from prefect_ml.data import create_data_asset
    from prefect_ml.flows.scheduled_job import scheduled_job

    asset = f"sched-data-{uuid.uuid4().hex[:6]}"
    create_data_asset(asset, path=str(write(tmp_path / "one.txt", "version-one\n")), type="uri_file")
    create_data_asset(asset, path=str(write(tmp_path / "two.txt", "version-two\n")), type="uri_file")
    job = {"command": "python -c \"import sys; print(open(sys.argv[1]).read())\" ${{inputs.data}}",
           "inputs": {"data": {"type": "uri_file", "path": f"azureml:{asset}@latest"}}}
    name = f"sched-{uuid.uuid4().hex[:6]}"
    state = scheduled_job(job=job, base_path=str(tmp_path), schedule_name=name, data_asset=asset, data_version="1",
                          return_state=True)
    assert state.is_completed(), state.message
    (ran,) = [j for j in MLClient(autostart=False).jobs.list(max_results=20) if j.name.startswith(name)]
    log = open(ran.log_path).read()
    assert "version-one" in log and "version-two" not in log


def test_compute_list_and_show_explain_the_local_pool_is_not_compute_local():
    """The deployments' process pool `local` and a job's in-process `compute: local` are told apart."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="local", type="process"))  # as `prefect deploy` does
        except ObjectAlreadyExists:
            pass
    listed = _cli("compute", "list")
    assert listed.exit_code == 0, listed.output
    text = " ".join(listed.stdout.split())
    assert "work pool 'local' (process) serves deployments" in text
    assert "`compute: local` in a job file" in text and "runs in the process that runs the job" in text
    as_json = _cli("compute", "list", "--output", "json")
    assert "local" in [t["name"] for t in json.loads(as_json.stdout)]  # stdout stays JSON; the note on stderr
    assert "serves deployments" in as_json.stderr
    shown = _cli("compute", "show", "local")
    assert json.loads(shown.stdout)["type"] == "local"
    assert "runs a job in the process that runs the job" in " ".join(shown.stderr.split())


def test_schedule_create_says_to_start_a_worker_unless_one_polls_the_pool(tmp_path):
    """Without a worker polling the pool the scheduled runs never start: schedule create says how to start one;
    with one polling (its heartbeat, as ``prefect worker start`` sends) it says nothing."""
    from helpers import cli_in_process
    from prefect_ml._prefect import prefect_client

    name = f"hint-{uuid.uuid4().hex[:6]}"
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    schedule_file = write(tmp_path / "schedule.yml",
                          f"name: {name}\ntrigger: {{type: cron, expression: '0 3 * * *'}}\n{JOB}")
    try:
        created = cli_in_process("schedule", "create", "--file", str(schedule_file), "--pool", pool)
        assert created.returncode == 0, created.stderr
        assert f"no worker is polling work pool {pool!r}" in created.stderr
        assert f"`PREFECT_API_URL={os.environ['PREFECT_API_URL']} prefect worker start --pool {pool}`" in created.stderr
        with prefect_client() as client:
            client.send_worker_heartbeat(pool, "test-worker", heartbeat_interval_seconds=30)
        again = cli_in_process("schedule", "create", "--file", str(schedule_file), "--pool", pool, "--output", "json")
        assert again.returncode == 0 and json.loads(again.stdout)["work_pool"] == pool
        assert "worker" not in again.stderr
    finally:
        cli_in_process("schedule", "delete", name)
        with prefect_client() as client:
            client.delete_work_pool(pool)
