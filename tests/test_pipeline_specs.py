"""Pipeline and component specifications: parsing, bindings and the errors reported before anything runs.

No Prefect flow runs here; tests that need the component registry use the session's Prefect API.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import write
from prefect_ml.exceptions import ValidationError


def _pipeline(tmp_path: Path, text: str):
    from prefect_ml import load_job

    return load_job(write(tmp_path / "pipeline.yml", textwrap.dedent(text) if text.startswith("\n ") else text))


def _problems(exc) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in exc.value.problems]


COMPONENT = """
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train
version: 1
type: command
code: ./src
command: python train.py --data ${{inputs.data}} --max_epochs ${{inputs.max_epochs}} $[[--lr ${{inputs.lr}}]] --model ${{outputs.model}}
environment: azureml:AzureML-sklearn-1.5@latest
inputs:
  data: {type: uri_folder}
  max_epochs: {type: integer, default: 5, min: 1, max: 100, description: epochs}
  lr: {type: number, optional: true}
  mode: {type: string, default: fast, enum: [fast, slow]}
outputs:
  model: {type: uri_folder}
"""


@pytest.fixture
def component_dir(tmp_path):
    write(tmp_path / "components" / "train.yml", COMPONENT)
    write(tmp_path / "components" / "src" / "train.py", "print('train')\n")
    return tmp_path / "components"


def test_every_azure_hello_pipeline_parses(azure_examples):
    from prefect_ml import load_job
    from prefect_ml.specs.pipeline import PipelineJob

    files = sorted((azure_examples / "jobs" / "basics").glob("hello-pipeline*.yml"))
    assert len(files) == 14
    for file in files:
        job = load_job(file)
        assert isinstance(job, PipelineJob) and job.type == "pipeline" and job.jobs
        assert PipelineJob.model_validate(job.model_dump(mode="json", by_alias=True)).graph() == job.graph()
    io = load_job(azure_examples / "jobs/basics/hello-pipeline-io.yml")
    assert io.jobs["world_job"].input_bindings == {"world_input": ["hello_job", "world_output"]}
    assert io.order() == ["hello_job", "world_job"]
    abc = load_job(azure_examples / "jobs/basics/hello-pipeline-abc.yml")
    assert abc.jobs["a"].job["inputs"]["hello_string"]["default"] == "hello world"  # ${{parent.inputs.X}}
    settings = load_job(azure_examples / "jobs/basics/hello-pipeline-settings.yml").settings
    assert settings.default_datastore == "azureml:workspaceblobstore" and settings.datastore_name == "workspaceblobstore"


def test_load_component_reads_the_azure_schema(component_dir):
    from prefect_ml import load_component

    component = load_component(component_dir / "train.yml")
    assert component.version == "1" and component.is_deterministic
    assert component.inputs["max_epochs"].min == 1 and component.inputs["max_epochs"].description == "epochs"
    assert component.inputs["lr"].optional and component.inputs["mode"].enum == ["fast", "slow"]
    assert component.code_path() == (component_dir / "src").resolve()


def test_bare_optional_input_in_a_component_names_the_input_and_the_fix(tmp_path):
    from prefect_ml import load_component

    text = COMPONENT.replace("$[[--lr ${{inputs.lr}}]]", "--lr ${{inputs.lr}}")
    write(tmp_path / "src" / "train.py", "")
    with pytest.raises(ValidationError) as exc:
        load_component(write(tmp_path / "c.yml", text))
    [(field, message)] = _problems(exc)
    assert field == "command" and "optional input 'lr'" in message and "$[[--lr ${{inputs.lr}}]]" in message


def test_optional_inputs_omitted_empty_and_default_render_as_azure_does(component_dir):
    from prefect_ml import load_component
    from prefect_ml.specs import Input, render_command

    component = load_component(component_dir / "train.yml")

    def rendered(**values):
        job = component.to_job(inputs={k: (v.with_value(values[k]) if k in values else v)
                                       for k, v in component.inputs.items()})
        given = {k: v.value for k, v in job.inputs.items()}
        return render_command(job.command, inputs=given, outputs={"model": "/out"}, name="j")

    omitted = rendered(data="/d")
    assert omitted == "python train.py --data /d --max_epochs 5  --model /out"  # default 5; lr block dropped
    assert "--max_epochs 5" in omitted and omitted.split().count("5") == 1
    assert rendered(data="/d", lr=0.1) == "python train.py --data /d --max_epochs 5 --lr 0.1 --model /out"
    assert "--max_epochs 7" in rendered(data="/d", max_epochs=7)
    assert rendered(data="/d", lr=None) == omitted  # empty (``lr:`` with no value) is omitted
    with pytest.raises(ValidationError):
        Input(type="integer", min=1, max=100).with_value(500)


def _component_pipeline(component_dir, jobs: str, extra: str = "") -> str:
    head = textwrap.dedent("""
        type: pipeline
        inputs:
          training_data: {type: uri_folder, path: ./components/src}
          epochs: 10
          csv: {type: uri_file, path: ./components/src/train.py}
        """)
    return head + extra + "\njobs:\n" + textwrap.indent(textwrap.dedent(jobs).strip("\n"), "  ") + "\n"


def test_component_steps_by_file_and_bindings(tmp_path, component_dir):
    job = _pipeline(tmp_path, _component_pipeline(component_dir, """
    train:
      type: command
      component: file:./components/train.yml
      inputs:
        data: ${{parent.inputs.training_data}}
        max_epochs: ${{parent.inputs.epochs}}
    again:
      component: ./components/train.yml
      compute: local
      inputs:
        data: ${{parent.jobs.train.outputs.model}}
        lr: 0.5
    empty:
      component: ./components/train.yml
      inputs:
        data: ${{parent.inputs.training_data}}
        lr:
    """))
    assert job.jobs["empty"].job["inputs"]["lr"].get("default") is None
    train, again = job.jobs["train"], job.jobs["again"]
    assert train.job["inputs"]["max_epochs"]["default"] == 10
    assert train.job["inputs"]["data"]["path"] == str((component_dir / "src").resolve())
    assert again.depends_on == ["train"] and again.input_bindings == {"data": ["train", "model"]}
    assert again.job["inputs"]["lr"]["default"] == 0.5 and job.step_compute("again") == "local"
    assert train.component_name == "train" and train.is_deterministic


@pytest.mark.parametrize("jobs,field,words", [
    ("""
    a:
      command: echo ${{inputs.x}}
      inputs: {x: "${{parent.jobs.b.outputs.out}}"}
      outputs: {out: }
    b:
      command: echo ${{inputs.y}}
      inputs: {y: "${{parent.jobs.a.outputs.out}}"}
      outputs: {out: }
    """, "jobs.", ["cycle", "${{parent.jobs."]),
    ("""
    a:
      command: echo ${{inputs.x}}
      inputs: {x: "${{parent.jobs.nope.outputs.out}}"}
    """, "jobs.a.inputs.x", ["unknown step 'nope'", "${{parent.jobs.nope.outputs.out}}"]),
    ("""
    a:
      command: echo hi > ${{outputs.out}}/f
      outputs: {out: }
    b:
      command: echo ${{inputs.x}}
      inputs: {x: "${{parent.jobs.a.outputs.ot}}"}
    """, "jobs.b.inputs.x", ["unknown output 'ot' of step 'a'", "did you mean 'out'"]),
    ("""
    a:
      command: echo hi > ${{outputs.out}}
      outputs: {out: {type: uri_file}}
    b:
      command: ls ${{inputs.x}}
      inputs: {x: {type: uri_folder, path: "${{parent.jobs.a.outputs.out}}"}}
    """, "jobs.b.inputs.x", ["uri_file output to a uri_folder input", "${{parent.jobs.a.outputs.out}}"]),
    ("""
    a:
      command: echo ${{inputs.x}}
      inputs: {x: "${{parent.inputs.missing}}"}
    """, "jobs.a.inputs.x", ["unknown pipeline input 'missing'"]),
    ("""
    a:
      command: echo hi
      outputs: {out: "${{parent.outputs.nothing}}"}
    """, "jobs.a.outputs.out", ["unknown pipeline output 'nothing'"]),
])
def test_bad_bindings_are_rejected_before_running_with_the_binding(tmp_path, jobs, field, words):
    with pytest.raises(ValidationError) as exc:
        _pipeline(tmp_path, f"type: pipeline\njobs:\n{textwrap.indent(textwrap.dedent(jobs), '  ')}")
    text = "\n".join(f"{f}: {m} {p.value}" for (f, m), p in zip(_problems(exc), exc.value.problems))
    assert any(f.startswith(field) for f, _ in _problems(exc)), text
    for word in words:
        assert word in text, text


def test_component_type_mismatch_and_unknown_inputs(tmp_path, component_dir):
    with pytest.raises(ValidationError) as exc:
        _pipeline(tmp_path, _component_pipeline(component_dir, """
        train:
          component: ./components/train.yml
          inputs:
            data: ${{parent.inputs.csv}}
            max_epoch: 3
        """))
    problems = _problems(exc)
    assert ("jobs.train.inputs.data", "binding ${{parent.inputs.csv}} gives a uri_file to a uri_folder input") \
        in problems
    assert any(f == "jobs.train.inputs.max_epoch" and "did you mean 'max_epochs'" in m for f, m in problems)


def test_required_component_input_left_unbound(tmp_path, component_dir):
    with pytest.raises(ValidationError) as exc:
        _pipeline(tmp_path, _component_pipeline(component_dir, """
        train:
          component: ./components/train.yml
        """))
    assert [f for f, _ in _problems(exc)] == ["jobs.train.inputs.data"]


def test_unknown_settings_are_warned_not_fatal(tmp_path):
    job = _pipeline(tmp_path, """
    type: pipeline
    settings: {default_compute: local, force_rerun: true, continue_on_step_failure: true, on_init: x}
    jobs:
      a: {command: echo hi}
    """)
    assert job.settings.force_rerun and job.settings.continue_on_step_failure
    assert any("settings.on_init" in w for w in job.warnings)


def test_sweep_and_automl_steps_need_their_kind(tmp_path, monkeypatch):
    from prefect_ml import job_kinds

    monkeypatch.setattr(job_kinds, "KINDS", {k: v for k, v in job_kinds.KINDS.items() if k not in ("sweep", "automl")})
    with pytest.raises(ValidationError) as exc:
        _pipeline(tmp_path, """
        type: pipeline
        jobs:
          tune: {type: sweep, trial: {command: echo}}
          auto: {type: automl, task: classification}
        """)
    messages = dict(_problems(exc))
    assert "'sweep' steps are not supported yet" in messages["jobs.tune.type"]
    assert "'automl' steps are not supported yet" in messages["jobs.auto.type"]


def test_python_pipeline_builds_the_same_graph_as_yaml(tmp_path, component_dir):
    from prefect_ml import Input, load_component, pipeline

    yaml_job = _pipeline(tmp_path, _component_pipeline(component_dir, """
    train:
      component: ./components/train.yml
      inputs:
        data: ${{parent.inputs.training_data}}
        max_epochs: ${{parent.inputs.epochs}}
    train_2:
      component: ./components/train.yml
      inputs:
        data: ${{parent.jobs.train.outputs.model}}
      outputs:
        model: ${{parent.outputs.final}}
    """, extra="outputs: {final: {type: uri_folder}}"))
    train = load_component(component_dir / "train.yml")

    @pipeline(compute="local", description="two trainings")
    def two(training_data, epochs=10):
        first = train(data=training_data, max_epochs=epochs)
        second = train(data=first.outputs.model)
        return {"final": second.outputs.model}

    job = two(training_data=Input(type="uri_folder", path=str(component_dir / "src")))
    assert job.graph() == yaml_job.graph()
    assert job.settings.default_compute == "local" and job.description == "two trainings"
    job.settings.default_compute = "serverless"
    assert job.step_compute("train") == "serverless"


def test_command_component_from_a_typed_function(tmp_path):
    import importlib.util

    write(tmp_path / "steps.py", textwrap.dedent("""
        from prefect_ml import Input, Output, command_component

        @command_component(display_name="Add")
        def add(numbers: Input(type="uri_file"), offset: int = 1, scale: float = None,
                result: Output(type="uri_folder") = None):
            pass
    """))
    spec = importlib.util.spec_from_file_location("steps", tmp_path / "steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    add = module.add
    assert add.name == "add" and add.code == str(tmp_path)
    assert add.inputs["numbers"].type == "uri_file" and add.inputs["offset"].default == 1
    assert add.inputs["scale"].optional and add.outputs["result"].type == "uri_folder"
    assert add.command == ("python -m prefect_ml.pipelines.runner steps:add --numbers ${{inputs.numbers}} "
                           "--offset ${{inputs.offset}} $[[--scale ${{inputs.scale}}]] --result ${{outputs.result}}")


def test_the_example_pipeline_yaml_and_python_have_the_same_steps():
    import importlib.util

    from helpers import REPO
    from prefect_ml import load_job

    spec = importlib.util.spec_from_file_location("example_pipeline", REPO / "examples/pipelines/pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from_yaml, from_python = load_job(REPO / "examples/pipelines/pipeline.yml"), module.build()
    assert from_yaml.graph() == from_python.graph()
    assert from_yaml.order() == from_python.order() == ["prepare_data", "train_model", "evaluate_model",
                                                        "register_model"]
    assert from_yaml.outputs["registered_model"].name == from_python.outputs["registered_model"].name
    assert not from_yaml.jobs["register_model"].is_deterministic


def test_registered_components_by_version_and_latest(tmp_path, component_dir):
    import uuid

    from prefect_ml.pipelines import create_component, get_component, list_components

    name = f"train_{uuid.uuid4().hex[:8]}"
    text = COMPONENT.replace("name: train", f"name: {name}")
    first = create_component(str(write(component_dir / "named.yml", text)))
    assert first.version == "1" and first.code != str(component_dir / "src")  # code snapshotted
    assert create_component(str(component_dir / "named.yml")).version == "1"  # same content: no new version
    with pytest.raises(ValidationError):
        create_component(str(write(component_dir / "named.yml", text.replace("--model", "--out"))))
    second = create_component(str(write(component_dir / "named2.yml", text.replace("version: 1\n", "").replace(
        "--model", "--out"))))
    assert second.version == "2" and [c.version for c in list_components(name)] == ["1", "2"]
    assert get_component(name).version == "2" and get_component(name, "1").command == first.command
    job = _pipeline(tmp_path, f"""
    type: pipeline
    inputs: {{d: {{type: uri_folder, path: .}}}}
    jobs:
      pinned: {{component: "azureml:{name}:1", inputs: {{data: "${{{{parent.inputs.d}}}}"}}}}
      latest: {{component: "azureml:{name}@latest", inputs: {{data: "${{{{parent.inputs.d}}}}"}}}}
    """)
    assert job.jobs["pinned"].component == f"azureml:{name}:1"
    assert job.jobs["latest"].component == f"azureml:{name}:2" and "--out" in job.jobs["latest"].job["command"]
    with pytest.raises(ValidationError) as exc:
        _pipeline(tmp_path, f"""
        type: pipeline
        jobs:
          a: {{component: "azureml:{name}:9"}}
        """)
    assert "has no version '9'" in exc.value.problems[0].message


@pytest.mark.slow
def test_component_cli_create_list_show(component_dir):
    import json
    import uuid

    from helpers import cli_in_process as cli

    def cli_json(*args):
        result = cli(*args, "--output", "json")
        return result, json.loads(result.stdout) if result.returncode == 0 else None

    name = f"cli_{uuid.uuid4().hex[:8]}"
    path = write(component_dir / "cli.yml", COMPONENT.replace("name: train", f"name: {name}"))
    result, created = cli_json("component", "create", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert created["name"] == name and created["version"] == "1" and created["reference"] == f"azureml:{name}:1"
    result, listed = cli_json("component", "list", "--name", name)
    assert [c["version"] for c in listed] == ["1"] and listed[0]["inputs"]["lr"]["optional"] is True
    shown = cli("component", "show", f"azureml:{name}@latest")
    assert shown.returncode == 0 and f'"reference": "azureml:{name}:1"' in shown.stdout
    bad = cli("component", "create", "--file", str(write(component_dir / "bad.yml", COMPONENT.replace(
        "$[[--lr ${{inputs.lr}}]]", "--lr ${{inputs.lr}}"))))
    assert bad.returncode == 2 and "optional input 'lr'" in bad.stderr
