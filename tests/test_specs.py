"""Tests of the command job specification: Azure examples, models, validation, loading, SDK."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs import (
    DATA_INPUT_TYPES, MODEL_TYPES, CommandJob, Distribution, EnvironmentSpec, Input, Limits, Output, Resources,
    command, load_job, parse_job, render_command,
)

NOT_COMMAND = {"hello-automl-job-basic.yml"}


def _basics(azure_examples: Path) -> Path:
    return azure_examples / "jobs" / "basics"


def _copy(src: Path, dest: Path, *, with_code: bool = True) -> Path:
    target = dest / src.name
    shutil.copy(src, target)
    target.chmod(0o644)
    if with_code:
        (dest / "src").mkdir(exist_ok=True)
    return target


def _write(tmp_path: Path, text: str, name: str = "job.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _fields(exc: pytest.ExceptionInfo) -> list[str]:
    return [p.field for p in exc.value.problems]


def _all_example_files(azure_examples: Path) -> list[Path]:
    basics = _basics(azure_examples)
    return sorted(basics.glob("*.yml")) + sorted((basics / "hello-automl").glob("*.yml"))


# -- Azure's examples --------------------------------------------------------------------------


def test_every_basic_example_parses_or_is_clearly_not_a_command_job(azure_examples, tmp_path):
    files = _all_example_files(azure_examples)
    assert len(files) > 20
    command_jobs = 0
    for index, src in enumerate(files):
        folder = tmp_path / str(index)
        folder.mkdir()
        target = _copy(src, folder)
        text = src.read_text()
        if "type: sweep" in text:  # a supported kind of its own (tests/test_sweep_spec.py)
            assert load_job(target).type == "sweep"
        elif "type: automl" in text:
            assert load_job(target).type == "automl"  # see tests/test_automl_spec.py
        elif "type: command" in text or "commandJob.schema" in text:
            job = load_job(target)
            assert isinstance(job, CommandJob) and job.type == "command"
            assert job.source_file == str(target.resolve())
            assert job.base_path == str(folder.resolve())
            if job.code:
                assert job.code_path() == (folder / "src").resolve()
            command_jobs += 1
        elif "type: pipeline" in text:  # pipeline jobs are their own kind (tests/test_pipeline_specs.py)
            assert load_job(target).type == "pipeline"
        else:
            with pytest.raises(ValidationError) as exc:
                load_job(target)
            assert len(exc.value.problems) == 1
            problem = exc.value.problems[0]
            assert problem.field == "type"
            assert f"'{problem.value}' jobs are not supported" in problem.message
    assert command_jobs >= 15


@pytest.mark.parametrize("kind", ["parallel", "spark"])
def test_unsupported_job_types_name_their_type(tmp_path, kind):
    target = _write(tmp_path, f"type: {kind}\ncompute: local\n")
    with pytest.raises(ValidationError) as exc:
        load_job(target)
    assert _fields(exc) == ["type"]
    message = exc.value.problems[0].message
    assert f"'{kind}' jobs are not supported" in message
    assert all(t in message for t in ("automl", "command", "pipeline", "sweep"))
    assert exc.value.file == str(target)


def test_automl_example_is_not_a_command_job(azure_examples):
    job = load_job(_basics(azure_examples) / "hello-automl" / "hello-automl-job-basic.yml")
    assert job.type == "automl" and not isinstance(job, CommandJob)


def test_example_without_code_folder_reports_the_path_tried(azure_examples, tmp_path):
    target = _copy(_basics(azure_examples) / "hello-code.yml", tmp_path, with_code=False)
    with pytest.raises(ValidationError) as exc:
        load_job(target)
    assert _fields(exc) == ["code"]
    assert str((tmp_path / "src").resolve()) in exc.value.problems[0].message
    assert exc.value.problems[0].value == "src"
    # the read-only original has no src/ folder either
    with pytest.raises(ValidationError) as exc:
        load_job(_basics(azure_examples) / "hello-code.yml")
    assert _fields(exc) == ["code"]


def test_hello_world_input_literals(azure_examples):
    job = load_job(_basics(azure_examples) / "hello-world-input.yml")
    assert job.inputs["hello_string"] == Input(type="string", default="hello world")
    assert job.inputs["hello_number"].type == "integer" and job.inputs["hello_number"].value == 42
    assert job.referenced_inputs() == ["hello_string", "hello_number"]
    assert job.environment is not None and job.environment.is_inline
    assert job.environment.image == "library/python:latest" and not job.environment.is_curated


def test_hello_iris_literal_has_an_input_named_type(azure_examples, tmp_path):
    job = load_job(_copy(_basics(azure_examples) / "hello-iris-literal.yml", tmp_path))
    assert set(job.inputs) == {"type", "iris_csv"}
    assert job.inputs["type"] == Input(type="string", default="uri_file")
    assert job.inputs["iris_csv"].type == "string"
    assert job.inputs["iris_csv"].value.startswith("https://azuremlexamples")
    assert not job.inputs["iris_csv"].is_data


def test_hello_iris_file_data_input_and_registry_environment(azure_examples, tmp_path):
    job = load_job(_copy(_basics(azure_examples) / "hello-iris-file.yml", tmp_path))
    iris = job.inputs["iris_csv"]
    assert iris.type == "uri_file" and iris.is_data and iris.value.endswith("iris.csv")
    env = job.environment
    assert env.reference == "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    assert (env.registry, env.name, env.label, env.version) == ("azureml", "sklearn-1.5", "latest", None)
    assert env.is_curated and not env.is_inline


def test_hello_dataset_mode(azure_examples, tmp_path):
    job = load_job(_copy(_basics(azure_examples) / "hello-dataset.yml", tmp_path))
    assert job.inputs["sampledata"].mode == "ro_mount"
    assert job.inputs["sampledata"].path == "azureml:sampledata@latest"


def test_hello_model_as_output(azure_examples, tmp_path):
    job = load_job(_copy(_basics(azure_examples) / "hello-model-as-output.yml", tmp_path))
    assert job.outputs["output_folder"].type == "custom_model"
    assert job.inputs["input_model"].type == "mlflow_model"
    assert job.inputs["input_model"].type in MODEL_TYPES and "mlflow_model" in DATA_INPUT_TYPES
    assert job.referenced_outputs() == ["output_folder"]


def test_hello_model_as_input_has_no_code(azure_examples):
    job = load_job(_basics(azure_examples) / "hello-model-as-input.yml")
    assert job.code is None and job.code_path() is None
    assert job.inputs["my_model"].path == "../../assets/model/mlflow-model"


def test_hello_interactive_warns_about_services(azure_examples, tmp_path):
    job = load_job(_copy(_basics(azure_examples) / "hello-interactive.yml", tmp_path))
    assert any("services" in w and "ignored" in w for w in job.warnings)
    assert set(job.services) == {"my_vscode", "my_jupyter_lab", "my_tensorboard"}
    assert job.environment.name == "AzureML-tensorflow-2.16-cuda12" and job.environment.label == "latest"
    assert job.environment.is_curated


def test_null_output_is_a_default_uri_folder(azure_examples):
    job = load_job(_basics(azure_examples) / "hello-world-output-data.yml")
    assert job.outputs["hello_output"] == Output()
    assert job.outputs["hello_output"].type == "uri_folder"


def test_hello_world_org_and_env_var(azure_examples):
    org = load_job(_basics(azure_examples) / "hello-world-org.yml")
    assert org.tags == {"hello": "world"} and org.experiment_name == "hello-world-example"
    assert org.description.startswith("# Azure Machine Learning")
    env = load_job(_basics(azure_examples) / "hello-world-env-var.yml")
    assert env.environment_variables == {"hello_env_var": "hello world"}


def test_curated_reference_with_label():
    env = EnvironmentSpec.model_validate("azureml:AzureML-sklearn-1.5@latest")
    assert env.is_curated and env.name == "AzureML-sklearn-1.5" and env.label == "latest"


@pytest.mark.parametrize("ref, expected", [
    ("azureml:my-env:3", ("my-env", "3", None, None)),
    ("azureml:my-env", ("my-env", None, None, None)),
    ("my-env", ("my-env", None, None, None)),
    ("azureml://registries/reg1/environments/env/versions/7", ("env", "7", None, "reg1")),
])
def test_environment_reference_forms(ref, expected):
    env = EnvironmentSpec.model_validate(ref)
    assert (env.name, env.version, env.label, env.registry) == expected
    assert env.reference == ref and not env.is_curated


@pytest.mark.parametrize("ref", ["azureml:", "azureml://registries/azureml/envs/x", "my env", "azureml:a@b@c"])
def test_malformed_environment_reference(ref):
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "environment": ref})
    assert _fields(exc) == ["environment"]
    assert "malformed environment reference" in exc.value.problems[0].message


def test_inline_environment_with_build_and_conda_file():
    job = parse_job({"command": "ls", "environment": {
        "build": {"path": "docker", "dockerfile_path": "Dockerfile"}, "conda_file": "conda.yml", "version": 2}})
    env = job.environment
    assert (env.build_path, env.dockerfile_path, env.conda_file, env.version) == ("docker", "Dockerfile",
                                                                                  "conda.yml", "2")
    assert job.to_yaml_dict()["environment"]["build"] == {"path": "docker", "dockerfile_path": "Dockerfile"}


def test_inline_environment_needs_an_image():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "environment": {"conda_file": {"dependencies": ["python"]}}})
    assert _fields(exc) == ["environment.image"]


# -- input model -------------------------------------------------------------------------------


@pytest.mark.parametrize("literal, kind", [(0.01, "number"), (5, "integer"), (True, "boolean"), ("x", "string")])
def test_literal_inputs_are_normalised(literal, kind):
    job = parse_job({"command": "echo ${{inputs.v}}", "inputs": {"v": literal}})
    assert job.inputs["v"].type == kind and job.inputs["v"].value == literal
    assert type(job.inputs["v"].value) is type(literal)


def test_input_with_path_defaults_to_uri_folder():
    assert Input(path="data").type == "uri_folder"
    assert Input(type="uri_file", path="data.csv").value == "data.csv"
    assert Input(type="integer", default=5, min=1).value == 5


def test_input_constructor_raises_our_validation_error():
    with pytest.raises(ValidationError) as exc:
        Input(type="integer", default="abc")
    assert exc.value.problems[0].field == "default"
    with pytest.raises(ValidationError) as exc:
        Input(type="flaot", default=1.0)
    assert "did you mean 'float'" not in str(exc.value)  # 'float' is not an input type
    assert exc.value.problems[0].field == "type" and "'number'" in exc.value.problems[0].message


def test_input_values_are_coerced():
    job = parse_job({"command": "echo", "inputs": {"n": {"type": "integer", "default": "7"},
                                                  "s": {"type": "string", "default": 42},
                                                  "b": {"type": "boolean", "default": "true"}}})
    assert (job.inputs["n"].value, job.inputs["s"].value, job.inputs["b"].value) == (7, "42", True)


# -- validation --------------------------------------------------------------------------------


def test_unknown_input_in_command(tmp_path):
    path = _write(tmp_path, "command: python train.py --lr ${{inputs.lr}} --e ${{inputs.epochs}}\n"
                            "inputs:\n  lr: 0.1\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    assert _fields(exc) == ["command"]
    problem = exc.value.problems[0]
    assert "'epochs'" in problem.message and "lr" in problem.message and problem.file == str(path)
    assert problem.value == "${{inputs.epochs}}"


def test_unknown_output_and_other_expressions():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "x ${{outputs.model}} ${{search_space.B}} ${{name}}", "outputs": {"out": None}})
    assert _fields(exc) == ["command", "command"]
    assert "undeclared output 'model'" in exc.value.problems[0].message
    assert "out" in exc.value.problems[0].message
    assert exc.value.problems[1].value == "${{search_space.B}}"


def test_missing_required_input():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "echo ${{inputs.n}} ${{inputs.d}}",
                   "inputs": {"n": {"type": "integer"}, "d": {"type": "uri_folder"}}})
    assert _fields(exc) == ["inputs.n", "inputs.d"]
    assert "default:" in exc.value.problems[0].message and "path:" in exc.value.problems[1].message


def test_wrong_input_type_name_suggests():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "echo ${{inputs.lr}}", "inputs": {"lr": {"type": "numbr", "default": 0.1}}})
    assert _fields(exc) == ["inputs.lr.type"]
    assert "did you mean 'number'" in exc.value.problems[0].message
    assert exc.value.problems[0].value == "numbr"


@pytest.mark.parametrize("spec, message", [
    ({"type": "integer", "default": "abc"}, "must be an integer"),
    ({"type": "integer", "default": 2.5}, "must be an integer"),
    ({"type": "boolean", "default": 3}, "true or false"),
    ({"type": "integer", "default": True}, "not a boolean"),
    ({"type": "integer", "default": 0, "min": 1}, "below min"),
    ({"type": "number", "default": 2.0, "max": 1}, "above max"),
    ({"type": "string", "default": "c", "enum": ["a", "b"]}, "must be one of 'a', 'b'"),
])
def test_bad_literal_values(spec, message):
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "echo ${{inputs.x}}", "inputs": {"x": spec}})
    assert _fields(exc) == ["inputs.x.default"]
    assert message in exc.value.problems[0].message
    assert exc.value.problems[0].value == spec["default"]


def test_mode_must_fit_the_type():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "inputs": {"a": {"type": "uri_file", "path": "x", "mode": "eval_mount"},
                                              "b": {"type": "integer", "default": 1, "mode": "download"},
                                              "c": {"type": "uri_file", "path": "x", "mode": "copy"}},
                   "outputs": {"o": {"mode": "ro_mount"}}})
    assert _fields(exc) == ["inputs.a.mode", "inputs.b.mode", "inputs.c.mode", "outputs.o.mode"]


def test_unknown_fields_with_suggestions():
    with pytest.raises(ValidationError) as exc:
        parse_job({"comand": "ls", "inputs": {"x": {"type": "string", "defualt": "a"}},
                   "resources": {"instance_cout": 2}})
    fields = _fields(exc)
    assert "comand" in fields and "inputs.x.defualt" in fields and "resources.instance_cout" in fields
    by_field = {p.field: p.message for p in exc.value.problems}
    assert "did you mean 'command'?" in by_field["comand"]
    assert "did you mean 'default'?" in by_field["inputs.x.defualt"]
    assert "did you mean 'instance_count'?" in by_field["resources.instance_cout"]
    assert "base_path" not in by_field["comand"]  # bookkeeping fields are not offered
    assert "command" in fields  # and the missing command is reported too


def test_bare_optional_input():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "train --x ${{inputs.x}}", "inputs": {"x": {"type": "integer", "optional": True}}})
    assert _fields(exc) == ["command"]
    assert "$[[--x ${{inputs.x}}]]" in exc.value.problems[0].message and "'x'" in exc.value.problems[0].message
    job = parse_job({"command": "train $[[--x ${{inputs.x}}]]", "inputs": {"x": {"type": "integer",
                                                                             "optional": True}}})
    assert job.inputs["x"].value is None


def test_three_problems_reported_at_once(tmp_path):
    path = _write(tmp_path, "command: echo ${{inputs.missing}}\ncode: nowhere\nlimits:\n  timeout: 0\n"
                            "inputs:\n  n:\n    type: integer\n    default: abc\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    assert sorted(_fields(exc)) == ["code", "command", "inputs.n.default", "limits.timeout"]
    assert "4 problem(s)" in str(exc.value) and exc.value.file == str(path)
    assert all(p.file == str(path) for p in exc.value.problems)


@pytest.mark.parametrize("timeout", [0, -5])
def test_timeout_must_be_positive(timeout):
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "limits": {"timeout": timeout}})
    assert _fields(exc) == ["limits.timeout"] and exc.value.problems[0].value == timeout


def test_resources_and_distribution_checks():
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "resources": {"instance_count": 0},
                   "distribution": {"type": "horovod"}})
    assert _fields(exc) == ["resources.instance_count", "distribution.type"]
    assert "'pytorch'" in exc.value.problems[1].message
    with pytest.raises(ValidationError) as exc:
        parse_job({"command": "ls", "distribution": {"type": "pytorch", "process_count_per_instance": 0}})
    assert _fields(exc) == ["distribution.process_count_per_instance"]
    job = parse_job({"command": "ls", "distribution": {"type": "tensorflow", "worker_count": 2},
                     "resources": {"instance_count": 2, "instance_type": "gpu"}})
    assert isinstance(job.distribution, Distribution) and job.distribution.worker_count == 2
    assert job.resources == Resources(instance_count=2, instance_type="gpu")


def test_not_a_mapping_and_wrong_type(tmp_path):
    with pytest.raises(ValidationError) as exc:
        load_job(_write(tmp_path, "- a\n- b\n"))
    assert _fields(exc) == [""] and "mapping" in exc.value.problems[0].message
    with pytest.raises(ValidationError) as exc:
        parse_job({"type": "comand", "command": "ls"})
    message = exc.value.problems[0].message
    assert _fields(exc) == ["type"] and "unknown job type" in message and "'command'" in message


def test_identity_is_accepted_with_a_warning():
    job = parse_job({"command": "ls", "identity": {"type": "managed"}})
    assert job.warnings == ["identity has no effect on prefect-ml compute; ignored"]


def test_tags_and_environment_variables_become_strings():
    job = parse_job({"command": "ls", "tags": {"n": 1, "ok": True}, "environment_variables": {"N": 2, "E": None}})
    assert job.tags == {"n": "1", "ok": "true"} and job.environment_variables == {"N": "2", "E": ""}


# -- loading -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ValidationError) as exc:
        load_job(tmp_path / "nope.yml")
    assert "not found" in exc.value.problems[0].message and exc.value.file == str(tmp_path / "nope.yml")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "command: ls\ninputs:\n  a: [1, 2\nenvironment: x\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    assert exc.value.file == str(path)
    assert "YAML syntax error at line" in exc.value.problems[0].message
    path = _write(tmp_path, "command: ls\n  bad: indent\n", "other.yml")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    assert "line 2" in exc.value.problems[0].message


def test_overrides(tmp_path):
    (tmp_path / "src").mkdir()
    path = _write(tmp_path, "command: python t.py --lr ${{inputs.lr}} --d ${{inputs.d}} --e ${{inputs.e}}\n"
                            "code: src\ninputs:\n  lr: 0.01\n  d:\n    type: uri_file\n    path: a.csv\n"
                            "  e:\n    type: integer\n    default: 1\n    min: 1\n")
    job = load_job(path, overrides=["inputs.lr=0.1", "inputs.d=b.csv", "inputs.e=3", "compute=local",
                                    "limits.timeout=30", "environment_variables.FOO=bar", "tags.x=1"],
                   name="run-1")
    assert job.inputs["lr"].value == 0.1 and job.inputs["d"].path == "b.csv" and job.inputs["e"].value == 3
    assert job.inputs["e"].min == 1
    assert (job.compute, job.limits.timeout, job.name) == ("local", 30, "run-1")
    assert job.environment_variables == {"FOO": "bar"} and job.tags == {"x": "1"}
    assert job.code_path() == (tmp_path / "src").resolve()


def test_bad_overrides_are_reported_with_other_problems(tmp_path):
    path = _write(tmp_path, "command: ls\nenvironment: azureml:env@latest\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path, overrides=["lr0.1", "environment.image=x", "limits.timeout=-1"])
    assert _fields(exc) == ["overrides", "overrides", "limits.timeout"]
    assert exc.value.problems[0].value == "lr0.1" and "KEY=VALUE" in exc.value.problems[0].message
    assert "not a mapping" in exc.value.problems[1].message


def test_override_values_are_checked(tmp_path):
    path = _write(tmp_path, "command: echo ${{inputs.n}}\ninputs:\n  n:\n    type: integer\n    default: 1\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path, overrides=["inputs.n=abc"])
    assert _fields(exc) == ["inputs.n.default"]


# -- model helpers -----------------------------------------------------------------------------


def _full_job(tmp_path: Path) -> CommandJob:
    (tmp_path / "src").mkdir(exist_ok=True)
    path = _write(tmp_path, """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
name: j1
command: python t.py --lr ${{inputs.lr}} $[[--e ${{inputs.e}}]] --d ${{inputs.d}} --o ${{outputs.model}}
code: src
inputs:
  lr: 0.01
  e: {type: integer, optional: true, min: 1}
  d: {type: uri_file, path: data.csv, mode: download}
outputs:
  model: {type: mlflow_model}
environment:
  image: python:3.11
  conda_file: {dependencies: [python=3.11]}
resources: {instance_count: 2, shm_size: 2g}
limits: {timeout: 60}
distribution: {type: pytorch, process_count_per_instance: 2}
services: {v: {type: vs_code}}
tags: {a: b}
""")
    return load_job(path)


def test_round_trip_through_model_dump(tmp_path):
    job = _full_job(tmp_path)
    dumped = job.model_dump(mode="json", by_alias=True)
    assert dumped["$schema"].startswith("https://") and dumped["base_path"] == str(tmp_path.resolve())
    again = CommandJob.model_validate(dumped)
    assert again == job
    assert again.base_path == job.base_path and again.source_file == job.source_file
    assert again.warnings == job.warnings and len(job.warnings) == 1


def test_to_yaml_dict(tmp_path):
    data = _full_job(tmp_path).to_yaml_dict()
    assert "base_path" not in data and "source_file" not in data and "warnings" not in data
    assert data["inputs"]["lr"] == 0.01
    assert data["inputs"]["e"] == {"type": "integer", "optional": True, "min": 1}
    assert data["outputs"] == {"model": {"type": "mlflow_model"}}
    assert data["environment"] == {"image": "python:3.11", "conda_file": {"dependencies": ["python=3.11"]}}
    assert data["resources"] == {"instance_count": 2, "shm_size": "2g"}
    assert data["$schema"].endswith("commandJob.schema.json") and data["type"] == "command"
    assert parse_job(data).inputs == _full_job(tmp_path).inputs


def test_call_derives_a_new_job(tmp_path):
    job = _full_job(tmp_path)
    derived = job(lr=0.2, e=3, d=Input(type="uri_folder", path="other"))
    assert derived is not job and job.inputs["lr"].value == 0.01
    assert derived.inputs["lr"].value == 0.2 and derived.inputs["e"].value == 3
    assert derived.inputs["e"].min == 1 and derived.inputs["d"].type == "uri_folder"
    assert (derived.code, derived.command, derived.outputs, derived.environment) == (
        job.code, job.command, job.outputs, job.environment)
    with pytest.raises(ValidationError) as exc:
        job(epochs=3, e=0)
    assert sorted(_fields(exc)) == ["inputs.e.default", "inputs.epochs"]


def test_problem_str_mentions_field():
    text = str(Problem("inputs.x", "bad", 1, "f.yml"))
    assert text == "f.yml: inputs.x: bad (got 1)"


# -- SDK ---------------------------------------------------------------------------------------


def test_sdk_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    job = command(command="python t.py --lr ${{inputs.lr}} --data ${{inputs.data}} $[[--n ${{inputs.n}}]]",
                  code="src", inputs={"lr": 0.01, "data": Input(type="uri_file", path="data.csv"),
                                      "n": Input(type="integer", default=5, min=1, optional=True)},
                  outputs={"out": None}, environment="azureml:AzureML-sklearn-1.5@latest",
                  resources={"instance_count": 1}, timeout=120, tags={"k": 1}, identity={"type": "managed"},
                  distribution={"type": "mpi"})
    assert job.base_path == str(tmp_path.resolve()) and job.source_file is None
    assert job.inputs["lr"] == Input(type="number", default=0.01) and job.limits == Limits(timeout=120)
    assert job.environment.is_curated and job.outputs["out"] == Output()
    assert job.code_path() == (tmp_path / "src").resolve() and job.tags == {"k": "1"}
    assert job.warnings and job.distribution.type == "mpi"
    derived = job(lr=0.2)
    assert derived.inputs["lr"].value == 0.2 and derived.inputs["data"] == job.inputs["data"]
    rendered = render_command(derived.command, inputs={k: v.value for k, v in derived.inputs.items()},
                              outputs={"out": "/o"}, name="n1")
    assert rendered == "python t.py --lr 0.2 --data data.csv --n 5"


def test_sdk_command_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as exc:
        command(command="echo ${{inputs.x}}", code="missing", environment={"image": "python"}, limits={"timeout": 0})
    assert exc.value.file is None
    assert sorted(_fields(exc)) == ["code", "command", "limits.timeout"]


def test_set_on_an_undeclared_input_is_an_error_with_a_suggestion(tmp_path):
    from prefect_ml.exceptions import ValidationError
    from prefect_ml.specs import load_job

    job_file = tmp_path / "job.yml"
    job_file.write_text("command: echo ${{inputs.learning_rate}}\ninputs:\n  learning_rate: 0.1\n")
    with pytest.raises(ValidationError) as caught:
        load_job(job_file, overrides=["inputs.learning_rat=0.05"])
    assert "did you mean 'learning_rate'" in str(caught.value)


def test_set_keeps_the_type_of_a_literal_input(tmp_path):
    from prefect_ml.exceptions import ValidationError
    from prefect_ml.specs import load_job

    job_file = tmp_path / "job.yml"
    job_file.write_text("command: echo ${{inputs.lr}} ${{inputs.epochs}}\ninputs:\n  lr: 0.1\n  epochs: 3\n")
    job = load_job(job_file, overrides=["inputs.lr=0.05", "inputs.epochs=7"])
    assert (job.inputs["lr"].type, job.inputs["lr"].value) == ("number", 0.05)
    assert (job.inputs["epochs"].type, job.inputs["epochs"].value) == ("integer", 7)
    with pytest.raises(ValidationError) as caught:
        load_job(job_file, overrides=["inputs.lr=fast"])
    assert "inputs.lr" in str(caught.value) and "(from --set inputs.lr=fast)" in str(caught.value)
