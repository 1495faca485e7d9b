"""Sweep job specification: Azure's example, every distribution, bad spaces, sampling rules, SDK."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from prefect_ml.exceptions import ValidationError
from prefect_ml.specs import command, load_job
from prefect_ml.specs.sweep import (
    BanditPolicy, Choice, LogNormal, LogUniform, MedianStoppingPolicy, Normal, QLogNormal, QLogUniform, QNormal,
    QUniform, RandInt, SweepJob, Uniform, parse,
)
from prefect_ml.sweep.sampling import SweepStudy, grid_size

BASE = """\
type: sweep
trial:
  command: python train.py --x ${{search_space.x}}
  code: src
sampling_algorithm: random
search_space:
  x: {type: uniform, min_value: 0, max_value: 1}
objective: {goal: maximize, primary_metric: accuracy}
limits: {max_total_trials: 4, max_concurrent_trials: 2}
"""


def _job(tmp_path: Path, text: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "sweep.yml"
    path.write_text(text)
    return path


def _problems(tmp_path, text):
    with pytest.raises(ValidationError) as exc:
        load_job(_job(tmp_path, text))
    return {p.field: p.message for p in exc.value.problems}


def test_azure_hello_sweep_parses(azure_examples, tmp_path):
    target = tmp_path / "hello-sweep.yml"
    shutil.copy(azure_examples / "jobs" / "basics" / "hello-sweep.yml", target)
    (tmp_path / "src").mkdir()
    job = load_job(target)
    assert isinstance(job, SweepJob) and job.type == "sweep"
    assert job.objective.goal == "minimize" and job.primary_metric == "random_metric"
    assert isinstance(job.search_space["B"], Choice) and isinstance(job.search_space["C"], Uniform)
    assert job.limits.max_total_trials == 4 and job.limits.concurrency() == 2 and job.limits.timeout == 3600
    trial = job.trial_job({"B": "world", "C": 0.25})
    assert trial.command == "python hello-sweep.py --A ${{inputs.A}} --B ${{inputs.B}} --C ${{inputs.C}}"
    assert trial.inputs["A"].value == 0.5 and trial.inputs["B"].value == "world" and trial.inputs["C"].value == 0.25
    assert trial.code_path() == (tmp_path / "src").resolve()


def test_every_distribution_parses_and_samples_inside_its_space(tmp_path):
    text = BASE.replace("  x: {type: uniform, min_value: 0, max_value: 1}\n", """\
  x: {type: uniform, min_value: 0, max_value: 1}
  c: {type: choice, values: [a, 2, true]}
  r: {type: randint, upper: 5}
  lu: {type: loguniform, min_value: -6, max_value: -1}
  qu: {type: quniform, min_value: 1, max_value: 10, q: 2}
  qlu: {type: qloguniform, min_value: 0, max_value: 3, q: 1}
  n: {type: normal, mu: 10, sigma: 2}
  ln: {type: lognormal, mu: 0, sigma: 1}
  qn: {type: qnormal, mu: 10, sigma: 3, q: 2}
  qln: {type: qlognormal, mu: 1, sigma: 0.5, q: 1}
""").replace("--x ${{search_space.x}}", " ".join(f"--{n} ${{{{search_space.{n}}}}}" for n in
                                                   ("x", "c", "r", "lu", "qu", "qlu", "n", "ln", "qn", "qln")))
    job = load_job(_job(tmp_path, text))
    assert [type(d) for d in job.search_space.values()] == [Uniform, Choice, RandInt, LogUniform, QUniform,
                                                             QLogUniform, Normal, LogNormal, QNormal, QLogNormal]
    study = SweepStudy(job, tmp_path / "state", "s")
    samples = [study.ask()[1] for _ in range(40)]
    for v in samples:
        assert 0 <= v["x"] <= 1 and v["c"] in ("a", 2, True) and v["r"] in range(5)
        assert math.exp(-6) <= v["lu"] <= math.exp(-1)
        assert v["qu"] % 2 == 0 and 0 <= v["qu"] <= 10 and isinstance(v["qu"], int)
        assert isinstance(v["qlu"], int) and 1 <= v["qlu"] <= 20
        assert v["ln"] > 0 and v["qn"] % 2 == 0 and v["qln"] >= 0
    normals = [v["n"] for v in samples]
    assert 8 < sum(normals) / len(normals) < 12 and min(normals) < 10 < max(normals)


@pytest.mark.parametrize("space,field,words", [
    ("lr: {type: uniform, min_value: 0.1, max_value: 0.01}", "search_space.lr", "must be < 'max_value'"),
    ("lr: {type: quniform, min_value: 0, max_value: 1, q: 0}", "search_space.lr", "'q' must be > 0"),
    ("lr: {type: qnormal, mu: 0, sigma: 1, q: -1}", "search_space.lr", "'q' must be > 0"),
    ("lr: {type: choice, values: []}", "search_space.lr", "'values' is empty"),
    ("lr: {type: loguniform, min_value: 1, max_value: 800}", "search_space.lr", "overflows"),
    ("lr: {type: normal, mu: 0, sigma: 0}", "search_space.lr", "'sigma' must be > 0"),
    ("lr: {type: randint, upper: 0}", "search_space.lr", "'upper' must be >= 1"),
    ("lr: {type: unifrom, min_value: 0, max_value: 1}", "search_space.lr.type", "did you mean 'uniform'"),
    ("lr: {type: uniform, min_value: 0}", "search_space.lr.max_value", "is required"),
    ("lr: {type: uniform, min: 0, max_value: 1}", "search_space.lr.min", "unknown field"),
])
def test_bad_search_spaces_are_rejected_naming_the_parameter(tmp_path, space, field, words):
    text = BASE.replace("  x: {type: uniform, min_value: 0, max_value: 1}", "  x: {type: uniform, min_value: 0, "
                        "max_value: 1}\n  " + space)
    problems = _problems(tmp_path, text)
    assert field in problems, problems
    assert words in problems[field]


def test_sampling_and_policy_rules(tmp_path):
    grid = BASE.replace("sampling_algorithm: random", "sampling_algorithm: grid")
    assert "grid sampling needs a search space of choice parameters only; not choice: x" in \
        _problems(tmp_path, grid)["sampling_algorithm"]
    bayes = BASE.replace("sampling_algorithm: random", "sampling_algorithm: bayesian\nearly_termination: "
                         "{type: bandit, slack_factor: 0.1}")
    assert "bayesian sampling does not support early termination" in _problems(tmp_path, bayes)["early_termination"]
    assert "exactly one of slack_factor or slack_amount" in _problems(tmp_path, BASE + "early_termination: "
                                                                      "{type: bandit}\n")["early_termination"]
    assert "did you mean 'median_stopping'" in _problems(tmp_path, BASE + "early_termination: "
                                                         "{type: median_stoping}\n")["early_termination.type"]
    bad_ref = BASE.replace("${{search_space.x}}", "${{search_space.y}}")
    assert "search_space.y" in _problems(tmp_path, bad_ref)["trial.command"]
    problems = _problems(tmp_path, BASE.replace("goal: maximize", "goal: up"))
    assert "objective.goal" in problems


def test_sampling_algorithm_forms_and_grid_size(tmp_path):
    text = BASE.replace("sampling_algorithm: random", "sampling_algorithm: {type: random, seed: 7, rule: sobol}")
    job = load_job(_job(tmp_path, text))
    assert (job.sampling_algorithm.type, job.sampling_algorithm.seed, job.sampling_algorithm.rule) == \
        ("random", 7, "sobol")
    grid = BASE.replace("sampling_algorithm: random", "sampling_algorithm: grid").replace(
        "{type: uniform, min_value: 0, max_value: 1}", "{type: choice, values: [1, 2, 3]}")
    job = load_job(_job(tmp_path, grid))
    assert grid_size(job) == 3
    study = SweepStudy(job, tmp_path / "grid", "g")
    assert sorted(study.ask()[1]["x"] for _ in range(3)) == [1, 2, 3]


def test_sobol_and_seeded_random_are_reproducible_and_resume_continues(tmp_path):
    text = BASE.replace("sampling_algorithm: random", "sampling_algorithm: {type: random, seed: 3}")
    job = load_job(_job(tmp_path, text))
    first = [SweepStudy(job, tmp_path / "a", "s").ask()[1]["x"] for _ in range(1)]
    study = SweepStudy(job, tmp_path / "b", "s")
    seq = [study.ask()[1]["x"] for _ in range(3)]
    assert seq[0] == first[0]
    resumed = SweepStudy(job, tmp_path / "b", "s")  # a new process would reload the pickled sampler
    nxt = resumed.ask()[1]["x"]
    assert nxt not in seq
    fresh = SweepStudy(job, tmp_path / "c", "s")
    assert [fresh.ask()[1]["x"] for _ in range(4)] == seq + [nxt]


def test_sdk_command_sweep_like_azure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    job = command(code="src", command="python train.py --lr ${{inputs.lr}} --alpha ${{inputs.alpha}} --n ${{inputs.n}}",
                  inputs={"lr": Uniform(0.001, 0.1), "alpha": Choice([0.1, 1.0]), "n": 5})
    sweep = job.sweep(compute="local", sampling_algorithm="random", primary_metric="accuracy", goal="Maximize")
    assert isinstance(sweep, SweepJob) and sweep.objective.goal == "maximize"
    assert set(sweep.search_space) == {"lr", "alpha"} and sweep.inputs["n"].value == 5
    sweep.set_limits(max_total_trials=6, max_concurrent_trials=2, timeout=600, trial_timeout=60)
    assert (sweep.limits.max_total_trials, sweep.limits.concurrency(), sweep.limits.trial_timeout) == (6, 2, 60)
    sweep.early_termination = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=2)
    assert sweep.early_termination.type == "bandit"
    trial = sweep.trial_job({"lr": 0.05, "alpha": 1.0}, timeout=sweep.limits.trial_timeout,
                            tags={"mlflow.parentRunId": "abc"})
    assert trial.inputs["lr"].value == 0.05 and trial.inputs["n"].value == 5
    assert trial.limits.timeout == 60 and trial.tags["mlflow.parentRunId"] == "abc"  # trial_timeout kills a trial
    # a derived job (Azure's job(kernel=Uniform(...))) sweeps as well
    derived = command(code="src", command="python train.py --lr ${{inputs.lr}}", inputs={"lr": 0.01})(
        lr=LogUniform(-6, -1))
    assert isinstance(derived.sweep(primary_metric="loss", goal="minimize").search_space["lr"], LogUniform)
    with pytest.raises(ValidationError) as exc:
        sweep.set_limits(max_total_trials=0)
    assert exc.value.problems[0].field == "limits.max_total_trials"
    with pytest.raises(ValidationError) as exc:
        command(command="echo ${{inputs.lr}}", inputs={"lr": Uniform(1, 0)})
    assert exc.value.problems[0].field == "inputs.lr"
    # round trip through the flow's parameter form
    again = SweepJob.model_validate(sweep.model_dump(mode="json", by_alias=True))
    assert again.search_space == sweep.search_space and again.early_termination == sweep.early_termination
    assert isinstance(MedianStoppingPolicy(delay_evaluation=1), MedianStoppingPolicy)


def test_sdk_classes_are_exported_lazily():
    import prefect_ml

    assert prefect_ml.Uniform is Uniform and prefect_ml.BanditPolicy is BanditPolicy
    assert prefect_ml.SweepJob is SweepJob and prefect_ml.ASHAPolicy.__name__ == "AsyncSuccessiveHalvingPolicy"
    assert parse is not None


def test_function_trials_are_checked_when_parsed(tmp_path):
    """trial: {function: MODULE:NAME, code: FOLDER}: imported and matched against the parameters."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fn_trial_mod.py").write_text("def train(lr: float, epochs: int = 3):\n    return lr\n")
    good = {"type": "sweep", "trial": {"function": "fn_trial_mod:train", "code": "src"}, "inputs": {"epochs": 2},
            "search_space": {"lr": {"type": "uniform", "min_value": 0.1, "max_value": 0.2}},
            "objective": {"goal": "maximize", "primary_metric": "acc"}}
    job = parse(good, base_path=tmp_path, source_file=None, file="s.yml", problems=[])
    assert job.is_function_trial and job.trial["code"] == str((tmp_path / "src").resolve())
    assert job.trial_arguments({"lr": 0.15}) == {"epochs": 2, "lr": 0.15}
    for trial, words in (({"function": "fn_trial_mod:nope", "code": "src"}, "cannot import it"),
                         ({"function": "fn_trial_mod", "code": "src"}, "MODULE:NAME"),
                         ({"function": "fn_trial_mod:train", "code": "src", "command": "x"}, "unexpected: command")):
        with pytest.raises(ValidationError) as info:
            parse({**good, "trial": trial}, base_path=tmp_path, source_file=None, file="s.yml", problems=[])
        assert words in str(info.value) and "trial" in str(info.value)
    with pytest.raises(ValidationError) as info:  # a parameter the function does not take
        parse({**good, "search_space": {"momentum": {"type": "choice", "values": [0.9]}}}, base_path=tmp_path,
              source_file=None, file="s.yml", problems=[])
    assert "no parameter named momentum" in str(info.value)


def test_component_file_trial_uses_its_command_code_and_defaults(tmp_path):
    (tmp_path / "comp" / "src").mkdir(parents=True)
    (tmp_path / "comp" / "train.yml").write_text(
        "type: command\nname: train\ncode: ./src\ncommand: python train.py --lr ${{inputs.lr}} --n ${{inputs.n}}\n"
        "inputs:\n  lr: {type: number}\n  n: {type: integer, default: 7}\n")
    data = {"type": "sweep", "trial": "file:comp/train.yml",
            "search_space": {"lr": {"type": "choice", "values": [0.1]}},
            "objective": {"goal": "maximize", "primary_metric": "acc"}}
    job = parse(data, base_path=tmp_path, source_file=None, file="s.yml", problems=[])
    trial = job.trial_job({"lr": 0.1}, name="t_0")
    assert trial.code_path() == (tmp_path / "comp" / "src").resolve()
    assert trial.inputs["lr"].default == 0.1 and trial.inputs["n"].default == 7
    with pytest.raises(ValidationError) as info:
        parse({**data, "trial": "file:comp/missing.yml"}, base_path=tmp_path, source_file=None, file="s.yml",
              problems=[])
    assert "cannot read the trial component file" in str(info.value)
