"""Azure schedule YAML -> Prefect schedules and triggers; the schedule CLI against the real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from helpers import REPO, cli, cli_json, wait_for, write

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
  end_time: "2026-11-06T00:00:00"
  time_zone: Pacific Standard Time
""" + JOB)
    (schedule,) = prefect_schedules(spec)
    assert schedule.timezone == "America/Los_Angeles"
    assert "FREQ=WEEKLY;INTERVAL=1;BYHOUR=9,17;BYMINUTE=30;BYDAY=MO,WE" in schedule.rrule
    la = ZoneInfo("America/Los_Angeles")
    dates = _server_dates(schedule, dt.datetime(2026, 10, 20, tzinfo=la), dt.datetime(2026, 11, 30, tzinfo=la))
    local = [d.astimezone(la).strftime("%a %d %H:%M") for d in dates]
    # DST ends 2026-11-01 in Los Angeles: still 09:30 and 17:30 local; nothing after end_time.
    assert local == ["Mon 26 09:30", "Mon 26 17:30", "Wed 28 09:30", "Wed 28 17:30",
                     "Mon 02 09:30", "Mon 02 17:30", "Wed 04 09:30", "Wed 04 17:30"]


def test_cron_with_start_and_end_is_bounded(tmp_path):
    from prefect_ml.deployments.schedules import prefect_schedules

    spec = _spec(tmp_path, "name: bounded\ntrigger: {type: cron, expression: '0 6 * * 1-5', "
                           "start_time: '2026-06-03T00:00:00', end_time: '2026-06-09T12:00:00'}\n" + JOB)
    (schedule,) = prefect_schedules(spec)
    dates = _server_dates(schedule, dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc),
                          dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc))
    assert [d.strftime("%a %d %H:%M") for d in dates] == ["Wed 03 06:00", "Thu 04 06:00", "Fri 05 06:00",
                                                         "Mon 08 06:00", "Tue 09 06:00"]


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
    result, created = cli_json("schedule", "create", "--file", str(schedule_file), "--pool", pool)
    assert result.returncode == 0, result.stderr
    assert created["flow"] == "scheduled-job" and created["enabled"] is True
    assert created["schedules"][0].startswith("rrule DTSTART;TZID=UTC")

    def scheduled_times():
        with prefect_client() as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[created["deployment_id"]])))
        return [r.expected_start_time for r in runs if r.state_type.value == "SCHEDULED"]

    first = wait_for(scheduled_times, timeout=60, what="runs scheduled by the server's scheduler")
    # Re-creating the unchanged schedule keeps one run per fire time.
    again = cli("schedule", "create", "--file", str(schedule_file), "--pool", pool)
    assert again.returncode == 0, again.stderr
    wait_for(lambda: len(scheduled_times()) >= len(first), timeout=60, what="runs after re-creating")
    times = scheduled_times()
    assert len(times) == len(set(times)) and set(first) <= set(times)

    listed = cli_json("schedule", "list")[1]
    assert name in [s["name"] for s in listed]
    disabled = cli_json("schedule", "disable", name)[1]
    assert disabled["enabled"] is False
    wait_for(lambda: not scheduled_times(), timeout=30, what="future runs deleted when disabled")
    assert cli_json("schedule", "enable", name)[1]["enabled"] is True
    shown = cli_json("schedule", "show", name)[1]
    assert shown["work_pool"] == pool
    assert cli("schedule", "delete", name).returncode == 0
    missing = cli("schedule", "show", name)
    assert missing.returncode == 2 and "not found" in missing.stderr


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
