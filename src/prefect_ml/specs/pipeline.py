"""The pipeline job model (Azure ML CLI v2 ``pipelineJob`` schema): steps, bindings and their checks.

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline for prefect-ml:
``inputs``, ``outputs``, ``settings`` and ``jobs`` whose steps are inline commands or component references
(``file:./c.yml``, ``./c.yml``, ``azureml:NAME:VERSION``, ``azureml:NAME@latest``), plus sweep and AutoML steps
when those job kinds are installed. Bindings (``${{parent.inputs.X}}``, ``${{parent.jobs.S.outputs.Y}}``,
``${{parent.outputs.Z}}``, ``${{default_datastore}}``) are checked before anything runs: unknown steps,
outputs and inputs, type mismatches and cycles are reported with the binding that is wrong.

:func:`parse_pipeline` turns the YAML mapping into a normalised :class:`PipelineJob`: each step holds the
command job it runs (components inlined, parent inputs substituted); only step-to-step bindings remain,
resolved to storage URIs when the upstream step has finished.
"""

from __future__ import annotations

import copy
import graphlib
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError
from prefect_ml.specs._base import JobSpec, Spec, suggest, translate_errors
from prefect_ml.specs.inputs import DATA_INPUT_TYPES, MODEL_TYPES, Input, Output, coerce_value, literal_type

AZURE_PIPELINE_REFERENCE = "https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline"
_WHOLE = re.compile(r"^\s*\$\{\{\s*(?P<expr>.*?)\s*\}\}\s*$", re.DOTALL)
_ANY = re.compile(r"\$\{\{\s*(?P<expr>.*?)\s*\}\}", re.DOTALL)
_PARENT_INPUT = re.compile(r"^parent\.inputs\.(\w+)$")
_PARENT_OUTPUT = re.compile(r"^parent\.outputs\.(\w+)$")
_STEP_OUTPUT = re.compile(r"^parent\.jobs\.(\w+)\.outputs\.(\w+)$")
#: Keys a component step may set besides ``component``, ``inputs`` and ``outputs``.
_STEP_OVERRIDES = ("compute", "environment", "environment_variables", "display_name", "description", "tags",
                   "resources", "limits", "distribution", "experiment_name", "identity", "services",
                   "queue_settings", "properties")
_COMMAND_KEYS = {"type", "name", "display_name", "experiment_name", "description", "tags", "code", "command",
                 "inputs", "outputs", "environment", "environment_variables", "compute", "resources", "limits",
                 "distribution", "identity", "services", "queue_settings", "properties", "$schema"}
#: Extra step keys (prefect-ml and Azure's step-level settings).
_STEP_KEYS = {"is_deterministic", "force_rerun", "component"}
KNOWN_SETTINGS = ("default_compute", "default_datastore", "continue_on_step_failure", "force_rerun",
                  "default_environment")
DEFAULT_DATASTORE = "workspaceblobstore"


def binding_of(value: Any) -> str | None:
    """The expression of a value that is exactly one ``${{...}}`` binding (``parent.inputs.x``), else None."""
    if isinstance(value, str):
        match = _WHOLE.match(value)
        if match and len(_ANY.findall(value)) == 1:
            return match.group("expr")
    return None


def step_output_binding(value: Any) -> tuple[str, str] | None:
    """``(step, output)`` of a ``${{parent.jobs.STEP.outputs.OUTPUT}}`` value, else None."""
    expr = binding_of(value)
    match = _STEP_OUTPUT.match(expr) if expr else None
    return (match.group(1), match.group(2)) if match else None


def compatible(output_type: str, input_type: str) -> bool:
    """Whether an output of ``output_type`` can feed an input of ``input_type``.

    Same type always; a ``uri_folder`` input also takes an ``mltable`` or model folder; an ``mltable``
    input a ``uri_folder`` (holding an MLTable file); a ``custom_model`` input any model.
    A ``uri_file`` never feeds a folder input (nor the reverse).
    """
    if output_type == input_type:
        return True
    if input_type == "uri_folder" and output_type in ({"mltable"} | MODEL_TYPES):
        return True
    if input_type == "mltable" and output_type == "uri_folder":
        return True
    return input_type == "custom_model" and output_type in MODEL_TYPES


class PipelineSettings(Spec):
    """``settings`` of a pipeline job.

    See https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline.

    Attributes:
        default_compute: Compute of steps that set none.
        default_datastore: Datastore of default output locations (``${{default_datastore}}``).
        default_environment: Environment of inline command steps that set none.
        continue_on_step_failure: Let steps that do not depend on a failed step finish.
        force_rerun: Run every step even when an earlier identical run could be reused.
    """

    default_compute: str | None = None
    default_datastore: str | None = None
    default_environment: str | None = None
    continue_on_step_failure: bool = False
    force_rerun: bool = False

    @property
    def datastore_name(self) -> str:
        """The default datastore's bare name (``azureml:`` removed)."""
        value = self.default_datastore or DEFAULT_DATASTORE
        return value.split("azureml:", 1)[-1] if value.startswith("azureml:") else value


class PipelineStep(Spec):
    """One normalised step of a pipeline job.

    Attributes:
        type: ``command``, ``sweep`` or ``automl``.
        job: The step's job: a ``CommandJob`` mapping for command steps (components inlined, parent inputs
            substituted; inputs bound to other steps keep their ``${{parent.jobs...}}`` path); the raw mapping
            for other kinds.
        component: The component used (``azureml:NAME:VERSION`` or its file), None for inline commands.
        component_name: The component's name, None for inline commands.
        compute: The step's own compute (None: ``settings.default_compute``).
        is_deterministic: Whether outputs may be reused from an identical earlier run.
        force_rerun: Never reuse this step.
        depends_on: Steps whose outputs it consumes.
        input_bindings: Input name -> ``[step, output]`` it is bound to.
        output_bindings: Step output name -> pipeline output name.
        output_types: Output name -> type (for binding checks of later steps).
    """

    type: str = "command"
    job: dict[str, Any]
    component: str | None = None
    component_name: str | None = None
    compute: str | None = None
    is_deterministic: bool = True
    force_rerun: bool = False
    depends_on: list[str] = Field(default_factory=list)
    input_bindings: dict[str, list[str]] = Field(default_factory=dict)
    output_bindings: dict[str, str] = Field(default_factory=dict)
    output_types: dict[str, str] = Field(default_factory=dict)


class PipelineJob(JobSpec):
    """A pipeline job: steps connected through their inputs and outputs.

    Implements the ``pipelineJob`` schema of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline.
    Build one with :func:`prefect_ml.load_job` (``type: pipeline``) or a :func:`prefect_ml.pipeline` function.

    Attributes:
        type: Always ``pipeline``.
        name: Job name; None to generate one.
        display_name: Name shown in the UI.
        experiment_name: MLflow experiment of the pipeline and its steps.
        description: Free text.
        tags: Tags.
        inputs: Pipeline inputs (bound by steps with ``${{parent.inputs.X}}``).
        outputs: Pipeline outputs (bound by steps with ``${{parent.outputs.Z}}``).
        settings: :class:`PipelineSettings`.
        jobs: Steps by name (normalised, see :class:`PipelineStep`).
        compute: Alias of ``settings.default_compute`` (Azure accepts both).
        base_path: Folder relative paths resolve against.
        source_file: The job file, when loaded from one.
        warnings: Notices (unknown settings keys, ignored fields).
    """

    type: Literal["pipeline"] = "pipeline"
    inputs: dict[str, Input] = Field(default_factory=dict)
    outputs: dict[str, Output] = Field(default_factory=dict)
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    jobs: dict[str, PipelineStep] = Field(default_factory=dict)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc), title="Invalid pipeline job") from None

    def step_compute(self, step: str) -> str | None:
        """The compute step ``step`` runs on: its own, else ``settings.default_compute``, else ``compute``."""
        return self.jobs[step].compute or self.settings.default_compute or self.compute

    def order(self) -> list[str]:
        """Step names in a dependency order (each step after the steps it consumes)."""
        sorter = graphlib.TopologicalSorter({name: step.depends_on for name, step in self.jobs.items()})
        return list(sorter.static_order())

    def dependents(self, step: str) -> set[str]:
        """Every step that depends on ``step``, directly or not."""
        found: set[str] = set()
        frontier = [step]
        while frontier:
            current = frontier.pop()
            for name, other in self.jobs.items():
                if current in other.depends_on and name not in found:
                    found.add(name)
                    frontier.append(name)
        return found

    def graph(self) -> dict[str, dict[str, Any]]:
        """A comparable summary of the step graph: per step its type, component, command, bindings and edges."""
        summary = {}
        for name, step in self.jobs.items():
            job = step.job
            summary[name] = {
                "type": step.type, "component": step.component_name,
                "command": job.get("command"), "depends_on": sorted(step.depends_on),
                "input_bindings": {k: list(v) for k, v in sorted(step.input_bindings.items())},
                "output_bindings": dict(sorted(step.output_bindings.items())),
                "inputs": sorted((job.get("inputs") or {})), "outputs": sorted((job.get("outputs") or {})),
            }
        return summary


# ------------------------------------------------------------------------------------------ parsing
class _Ctx:
    def __init__(self, file: str | None, base_path: str | None, problems: list[Problem], warnings: list[str]):
        self.file = file
        self.base_path = base_path
        self.problems = problems
        self.warnings = warnings

    def add(self, field: str, message: str, value: Any = None) -> None:
        self.problems.append(Problem(field, message, value, self.file))


def _absolute_path(path: Any, base_path: str | None) -> Any:
    """Make a relative local path absolute against ``base_path`` (URIs and references unchanged)."""
    if not isinstance(path, str) or "://" in path or path.startswith(("azureml:", "runs:/", "models:/")):
        return path
    if binding_of(path) is not None:
        return path
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_path:
        candidate = Path(base_path) / candidate
    return str(candidate.resolve()) if base_path or candidate.is_absolute() else path


def _parse_settings(raw: Any, ctx: _Ctx) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        ctx.add("settings", "must be a mapping (default_compute, default_datastore, continue_on_step_failure, "
                "force_rerun)", raw)
        return {}
    known: dict[str, Any] = {}
    for key, value in raw.items():
        if key in KNOWN_SETTINGS:
            known[key] = value
        else:
            ctx.warnings.append(f"settings.{key} is not used by prefect-ml{suggest(str(key), KNOWN_SETTINGS)}; "
                                "ignored")
    return known


def _load_component_ref(ref: Any, ctx: _Ctx, field: str):
    from prefect_ml.specs.component import CommandComponent, load_component, parse_component

    if isinstance(ref, CommandComponent):
        return ref, ref.source_file or ref.reference
    if isinstance(ref, Mapping):
        return parse_component(ref, base_path=ctx.base_path, source_file=ctx.file, field_prefix=field), None
    if not isinstance(ref, str) or not ref.strip():
        ctx.add(field, "must be a component file (file:./c.yml or ./c.yml), a registered component "
                "(azureml:NAME:VERSION or azureml:NAME@latest) or an inline component mapping", ref)
        return None, None
    ref = ref.strip()
    if ref.startswith("azureml:") and not ref.startswith("azureml://"):
        from prefect_ml.pipelines.registry import resolve_reference

        try:
            component = resolve_reference(ref)
        except NotFoundError as exc:
            ctx.add(field, str(exc), ref)
            return None, None
        return component, f"azureml:{component.name}:{component.version}"
    path = ref[len("file:"):] if ref.startswith("file:") else ref
    full = Path(path).expanduser()
    if not full.is_absolute():
        full = Path(ctx.base_path or Path.cwd()) / full
    if not full.is_file():
        ctx.add(field, f"component file not found: {full.resolve()} (relative to the pipeline file's folder)", ref)
        return None, None
    try:
        return load_component(full), str(full.resolve())
    except ValidationError as exc:
        ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, p.file or str(full))
                            for p in exc.problems)
        return None, None


class _RawStep:
    """A step between the two parsing passes."""

    def __init__(self, name: str):
        self.name = name
        self.type = "command"
        self.component = None
        self.component_ref: str | None = None
        self.data: dict[str, Any] = {}
        self.declared_outputs: dict[str, str] = {}
        self.ok = True


#: Outputs a step kind always has, with their types (Azure: an AutoML step outputs ``best_model``, an MLflow model).
KIND_OUTPUTS: dict[str, dict[str, str]] = {"automl": {"best_model": "mlflow_model"}}


def _first_pass(name: str, raw: Any, ctx: _Ctx) -> _RawStep:
    step = _RawStep(name)
    field = f"jobs.{name}"
    if not isinstance(raw, Mapping):
        ctx.add(field, "a step must be a mapping (command or component, inputs, outputs, ...)", raw)
        step.ok = False
        return step
    data = dict(raw)
    step.type = str(data.get("type", "command"))
    step.data = data
    if step.type != "command":
        from prefect_ml.job_kinds import KINDS

        if step.type not in KINDS:
            supported = ", ".join(sorted({"command", *[k for k in KINDS if k != "pipeline"]}))
            ctx.add(f"{field}.type", f"'{step.type}' steps are not supported yet by this version of prefect-ml "
                    f"(supported step types: {supported})", step.type)
            step.ok = False
            return step
        outputs = data.get("outputs") or {}
        defaults = KIND_OUTPUTS.get(step.type, {})
        step.declared_outputs = dict(defaults)
        if isinstance(outputs, Mapping):
            step.declared_outputs.update({
                k: (v.get("type") if isinstance(v, Mapping) and v.get("type") else defaults.get(k, "uri_folder"))
                for k, v in outputs.items()})
        return step
    if "component" in data:
        unknown = set(data) - {"type", "component", "inputs", "outputs", "name", *_STEP_OVERRIDES, *_STEP_KEYS}
        for key in sorted(unknown):
            ctx.add(f"{field}.{key}", f"not allowed on a component step{suggest(key, _STEP_OVERRIDES)} (allowed: "
                    "component, inputs, outputs, " + ", ".join(_STEP_OVERRIDES) + ")", data[key])
        step.component, step.component_ref = _load_component_ref(data["component"], ctx, f"{field}.component")
        if step.component is None:
            step.ok = False
            return step
        step.declared_outputs = {k: v.type for k, v in step.component.outputs.items()}
        return step
    if "command" not in data:
        ctx.add(f"{field}.command", "is required (or give 'component:' to use a component)")
        step.ok = False
        return step
    unknown = set(data) - _COMMAND_KEYS - _STEP_KEYS
    for key in sorted(unknown):
        ctx.add(f"{field}.{key}", f"unknown field{suggest(key, sorted(_COMMAND_KEYS))}", data[key])
    outputs = data.get("outputs") or {}
    if isinstance(outputs, Mapping):
        for key, value in outputs.items():
            step.declared_outputs[str(key)] = (value.get("type") or "uri_folder") if isinstance(value, Mapping) \
                else "uri_folder"
    return step


def _parent_output_type(value: Any, pipeline_outputs: dict[str, Output]) -> str | None:
    expr = binding_of(value)
    match = _PARENT_OUTPUT.match(expr) if expr else None
    if match and match.group(1) in pipeline_outputs:
        return pipeline_outputs[match.group(1)].type
    return None


def _bind_input(step: _RawStep, key: str, value: Any, declared: Input | None, steps: dict[str, _RawStep],
                pipeline_inputs: dict[str, Input], ctx: _Ctx, bindings: dict[str, list[str]]) -> Input | None:
    """Resolve one step input to an :class:`Input` (or None: not given); record problems and bindings."""
    field = f"jobs.{step.name}.inputs.{key}"
    mapping: dict[str, Any] = {}
    if isinstance(value, Mapping):
        mapping = dict(value)
        value = mapping.get("path", mapping.get("default"))
    if isinstance(value, str) and _ANY.search(value) and binding_of(value) is None:
        ctx.add(field, "a binding must be the whole value, e.g. ${{parent.inputs.NAME}}", value)
        return None
    expr = binding_of(value)
    if expr is None:
        if declared is not None:
            try:
                if mapping:
                    given = {k: v for k, v in mapping.items() if k in ("path", "default", "mode")}
                    merged = {**declared.model_dump(exclude_none=True), **given}
                    return Input.model_validate({**merged, "path": _absolute_path(merged.get("path"), ctx.base_path)})
                if value is None:
                    return declared
                return declared.with_value(_absolute_path(value, ctx.base_path) if declared.is_data else value)
            except ValidationError as exc:
                ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file)
                                    for p in exc.problems)
                return None
        if value is None and not mapping:
            return None
        try:
            item = Input.model_validate(mapping or value)
        except (ValidationError, PydanticValidationError, ValueError) as exc:
            problems = getattr(exc, "problems", None) or [Problem("", str(exc))]
            ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file)
                                for p in problems)
            return None
        if item.is_data and item.path is not None:
            item = item.model_copy(update={"path": _absolute_path(item.path, ctx.base_path)})
        return item
    parent_in = _PARENT_INPUT.match(expr)
    step_out = _STEP_OUTPUT.match(expr)
    shown = "${{" + expr + "}}"
    if parent_in:
        name = parent_in.group(1)
        if name not in pipeline_inputs:
            ctx.add(field, f"binding {shown} refers to unknown pipeline input '{name}'{suggest(name, pipeline_inputs)} "
                    f"(pipeline inputs: {', '.join(pipeline_inputs) or 'none'})", shown)
            return None
        source = pipeline_inputs[name]
        if declared is None:
            item = source.model_copy(update={k: v for k, v in mapping.items() if k in ("mode", "type", "optional")})
            if item.is_data and item.path is not None:
                item = item.model_copy(update={"path": _absolute_path(item.path, ctx.base_path)})
            return item
        if declared.is_data != source.is_data or (declared.is_data and not compatible(source.type, declared.type)):
            ctx.add(field, f"binding {shown} gives a {source.type} to a {declared.type} input", shown)
            return None
        if declared.is_data:
            return declared.with_value(_absolute_path(source.path, ctx.base_path)).model_copy(
                update={"mode": mapping.get("mode", declared.mode)})
        if source.value is None:
            return declared
        try:
            coerce_value(declared.type, source.value)
        except ValueError:
            ctx.add(field, f"binding {shown} gives a {source.type} ({source.value!r}) to a {declared.type} input",
                    shown)
            return None
        problems = declared.value_problems(source.value, field=field)
        if problems:
            ctx.problems.extend(Problem(p.field, p.message + f" (from {shown})", p.value, ctx.file) for p in problems)
            return None
        return declared.with_value(source.value)
    if step_out:
        other, output = step_out.group(1), step_out.group(2)
        if other not in steps:
            ctx.add(field, f"binding {shown} refers to unknown step '{other}'{suggest(other, steps)} "
                    f"(steps: {', '.join(steps)})", shown)
            return None
        if other == step.name:
            ctx.add(field, f"binding {shown} makes step '{step.name}' depend on itself (a cycle)", shown)
            return None
        upstream = steps[other]
        if upstream.ok and output not in upstream.declared_outputs:
            ctx.add(field, f"binding {shown} refers to unknown output '{output}' of step '{other}'"
                    f"{suggest(output, upstream.declared_outputs)} (its outputs: "
                    f"{', '.join(upstream.declared_outputs) or 'none'})", shown)
            return None
        out_type = upstream.declared_outputs.get(output, "uri_folder")
        in_type = mapping.get("type") or (declared.type if declared is not None else out_type)
        if declared is not None and not declared.is_data:
            ctx.add(field, f"binding {shown} gives a {out_type} output to the {declared.type} input '{key}'; "
                    "only data inputs take step outputs", shown)
            return None
        if in_type not in DATA_INPUT_TYPES:
            ctx.add(field, f"binding {shown} gives a {out_type} output to a {in_type} input", shown)
            return None
        if not compatible(out_type, in_type):
            ctx.add(field, f"binding {shown} gives a {out_type} output to a {in_type} input (type mismatch; "
                    f"declare the output as {in_type} or the input as {out_type})", shown)
            return None
        bindings[key] = [other, output]
        base = declared.model_dump(exclude_none=True) if declared is not None else {}
        base.update({"type": in_type, "path": shown})
        if mapping.get("mode") is not None:
            base["mode"] = mapping["mode"]
        return Input.model_validate(base)
    ctx.add(field, f"unsupported binding {shown}; a step input takes ${{{{parent.inputs.NAME}}}} or "
            "${{parent.jobs.STEP.outputs.NAME}}", shown)
    return None


def _bind_output(step: _RawStep, key: str, value: Any, declared: Output | None, pipeline_outputs: dict[str, Output],
                 ctx: _Ctx, output_bindings: dict[str, str], datastore: str) -> Output | None:
    field = f"jobs.{step.name}.outputs.{key}"
    expr = binding_of(value)
    if expr is not None:
        match = _PARENT_OUTPUT.match(expr)
        shown = "${{" + expr + "}}"
        if not match:
            ctx.add(field, f"unsupported binding {shown}; a step output takes ${{{{parent.outputs.NAME}}}}", shown)
            return None
        name = match.group(1)
        if name not in pipeline_outputs:
            ctx.add(field, f"binding {shown} refers to unknown pipeline output '{name}'{suggest(name, pipeline_outputs)}"
                    f" (pipeline outputs: {', '.join(pipeline_outputs) or 'none'})", shown)
            return None
        target = pipeline_outputs[name]
        if declared is not None and "type" in pipeline_outputs[name].model_fields_set and \
                declared.type != target.type:
            ctx.add(field, f"binding {shown}: the step's {declared.type} output cannot be the pipeline's "
                    f"{target.type} output '{name}'", shown)
            return None
        output_bindings[key] = name
        return declared or Output(type=target.type)
    data: dict[str, Any] = declared.model_dump(exclude_none=True) if declared is not None else {}
    if isinstance(value, Mapping):
        data.update(value)
    elif value is not None:
        ctx.add(field, "must be a mapping (type, path, mode, name, version), empty, or ${{parent.outputs.NAME}}", value)
        return None
    if isinstance(data.get("path"), str):
        data["path"] = data["path"].replace("${{default_datastore}}", datastore)
    try:
        return Output.model_validate(data)
    except ValidationError as exc:
        ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file)
                            for p in exc.problems)
        return None


def _substitute_parent_inputs(value: Any, pipeline_inputs: dict[str, Input]) -> Any:
    if isinstance(value, Mapping):
        return {k: _substitute_parent_inputs(v, pipeline_inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_parent_inputs(v, pipeline_inputs) for v in value]
    expr = binding_of(value)
    match = _PARENT_INPUT.match(expr) if expr else None
    if match and match.group(1) in pipeline_inputs:
        source = pipeline_inputs[match.group(1)]
        return source.to_yaml() if not source.is_data else {"type": source.type, "path": source.path,
                                                             **({"mode": source.mode} if source.mode else {})}
    return value


def _second_pass(step: _RawStep, steps: dict[str, _RawStep], pipeline: dict[str, Any], ctx: _Ctx
                 ) -> dict[str, Any] | None:
    from prefect_ml.specs.job import CommandJob

    field = f"jobs.{step.name}"
    data = step.data
    inputs_raw = data.get("inputs") or {}
    outputs_raw = data.get("outputs") or {}
    for section, raw in (("inputs", inputs_raw), ("outputs", outputs_raw)):
        if not isinstance(raw, Mapping):
            ctx.add(f"{field}.{section}", "must be a mapping", raw)
            return None
    pipeline_inputs: dict[str, Input] = pipeline["inputs"]
    pipeline_outputs: dict[str, Output] = pipeline["outputs"]
    datastore = pipeline["datastore"]
    bindings: dict[str, list[str]] = {}
    output_bindings: dict[str, str] = {}
    common = {"compute": data.get("compute"),
              "is_deterministic": bool(data.get("is_deterministic", True)),
              "force_rerun": bool(data.get("force_rerun", False))}
    if step.type != "command":
        for key, value in inputs_raw.items():
            pair = step_output_binding(value if not isinstance(value, Mapping) else value.get("path"))
            if pair:
                _bind_input(step, str(key), value, None, steps, pipeline_inputs, ctx, bindings)
        for key, value in outputs_raw.items():
            if binding_of(value):
                _bind_output(step, str(key), value, None, pipeline_outputs, ctx, output_bindings, datastore)
        job = _substitute_parent_inputs({k: v for k, v in data.items() if k not in _STEP_KEYS}, pipeline_inputs)
        if isinstance(job.get("outputs"), Mapping):
            job["outputs"] = {k: (None if binding_of(v) else v) for k, v in job["outputs"].items()}
        return {"type": step.type, "job": job, **common, "depends_on": sorted({b[0] for b in bindings.values()}),
                "input_bindings": bindings, "output_bindings": output_bindings,
                "output_types": dict(step.declared_outputs)}
    component = step.component
    declared_in = dict(component.inputs) if component is not None else {}
    declared_out = dict(component.outputs) if component is not None else {}
    inputs: dict[str, Input] = {}
    for key, value in inputs_raw.items():
        key = str(key)
        if component is not None and key not in declared_in:
            ctx.add(f"{field}.inputs.{key}", f"component {component.name} has no input '{key}'"
                    f"{suggest(key, declared_in)} (its inputs: {', '.join(declared_in) or 'none'})", value)
            continue
        item = _bind_input(step, key, value, declared_in.get(key), steps, pipeline_inputs, ctx, bindings)
        if item is not None:
            inputs[key] = item
        elif component is not None and key in declared_in and value is None:
            inputs[key] = declared_in[key]
    for key, item in declared_in.items():
        inputs.setdefault(key, item)
        if component is not None and not inputs[key].optional and inputs[key].value is None \
                and key not in bindings and not any(p.field.startswith(f"{field}.inputs.{key}") for p in ctx.problems):
            ctx.add(f"{field}.inputs.{key}", f"required input '{key}' of component {component.name} has no value; "
                    "bind it (${{parent.inputs.NAME}} or ${{parent.jobs.STEP.outputs.NAME}}) or give a value")
    outputs: dict[str, Output] = {}
    for key, value in outputs_raw.items():
        key = str(key)
        if component is not None and key not in declared_out:
            ctx.add(f"{field}.outputs.{key}", f"component {component.name} has no output '{key}'"
                    f"{suggest(key, declared_out)} (its outputs: {', '.join(declared_out) or 'none'})", value)
            continue
        item = _bind_output(step, key, value, declared_out.get(key), pipeline_outputs, ctx, output_bindings, datastore)
        if item is not None:
            outputs[key] = item
            step.declared_outputs[key] = item.type
    for key, item in declared_out.items():
        outputs.setdefault(key, item)
    if component is not None:
        overrides = {k: data[k] for k in _STEP_OVERRIDES if data.get(k) is not None and k != "compute"}
        try:
            job = component.to_job(inputs=inputs, outputs=outputs, **overrides)
        except ValidationError as exc:
            ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file)
                                for p in exc.problems)
            return None
        common["is_deterministic"] = bool(data.get("is_deterministic", component.is_deterministic))
        problems = [p for p in job.problems() if "required input has no value" not in p.message]
    else:
        job_data = {k: v for k, v in data.items() if k in _COMMAND_KEYS and k not in ("compute", "$schema")}
        job_data["inputs"] = inputs
        job_data["outputs"] = outputs
        job_data["base_path"] = ctx.base_path
        if job_data.get("environment") is None and pipeline.get("default_environment"):
            job_data["environment"] = pipeline["default_environment"]
        try:
            job = CommandJob.model_validate(job_data)
        except (ValidationError, PydanticValidationError) as exc:
            problems = exc.problems if isinstance(exc, ValidationError) else translate_errors(exc)
            ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file)
                                for p in problems)
            return None
        problems = job.problems()
    ctx.problems.extend(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, ctx.file) for p in problems
                        if not (p.field.startswith("inputs.") and p.field.split(".")[1] in bindings))
    return {"type": "command", "job": job.model_dump(mode="json", by_alias=True, exclude_none=True),
            "component": step.component_ref or (component.name if component is not None else None),
            "component_name": component.name if component is not None else None, **common,
            "depends_on": sorted({b[0] for b in bindings.values()}), "input_bindings": bindings,
            "output_bindings": output_bindings, "output_types": {k: v.type for k, v in outputs.items()}}


def _check_cycles(normalised: dict[str, dict[str, Any]], ctx: _Ctx) -> None:
    sorter = graphlib.TopologicalSorter({n: s["depends_on"] for n, s in normalised.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first, second = cycle[0], cycle[1] if len(cycle) > 1 else cycle[0]
        # cycle lists nodes so that each depends on the next one's successor; find the binding making it
        for a, b in zip(cycle, cycle[1:]):
            bound = [(k, v) for k, v in normalised[b]["input_bindings"].items() if v[0] == a] or \
                    [(k, v) for k, v in normalised[a]["input_bindings"].items() if v[0] == b]
            if bound:
                first, second = (b, a) if bound[0][1][0] == a else (a, b)
                key, (src, out) = bound[0]
                ctx.add(f"jobs.{first}.inputs.{key}", "binding ${{parent.jobs." + f"{src}.outputs.{out}" + "}} closes a "
                        f"cycle: {' -> '.join(cycle)}; a step cannot depend on its own outputs", f"${{{{parent.jobs."
                        f"{src}.outputs.{out}}}}}")
                return
        ctx.add("jobs", f"the steps form a cycle: {' -> '.join(cycle)}", None)


def parse_pipeline(data: Any, *, base_path: str | os.PathLike | None = None, source_file: str | os.PathLike | None = None,
                   file: str | None = None, problems: list[Problem] | None = None) -> PipelineJob:
    """Validate a pipeline job given as a mapping (the parsed YAML of a ``type: pipeline`` file).

    Args:
        data: The pipeline, in the shape of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline.
        base_path: Folder relative paths (component files, local inputs) resolve against.
        source_file: The file the mapping came from.
        file: File recorded on each problem (default: ``source_file``).
        problems: Problems already found (e.g. from ``--set``).

    Returns:
        The normalised :class:`PipelineJob`.

    Raises:
        ValidationError: Every problem found, at once (nothing runs).
    """
    file = file if file is not None else (str(source_file) if source_file is not None else None)
    problems = list(problems or [])
    warnings: list[str] = []
    base = str(Path(base_path).expanduser().resolve()) if base_path is not None else str(Path.cwd())
    ctx = _Ctx(file, base, problems, warnings)
    if not isinstance(data, Mapping):
        ctx.add("", "a pipeline job must be a mapping with 'type: pipeline' and 'jobs'", data)
        raise ValidationError(problems, file=file)
    data = copy.deepcopy(dict(data)) if not _has_objects(data) else dict(data)
    top: dict[str, Any] = {k: data.get(k) for k in ("$schema", "name", "display_name", "experiment_name",
                                                    "description", "tags", "compute") if data.get(k) is not None}
    allowed = {"$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "compute",
               "inputs", "outputs", "settings", "jobs", "identity", "properties"}
    for key in data:
        if key not in allowed:
            ctx.add(str(key), f"unknown field{suggest(str(key), sorted(allowed))} (allowed: "
                    f"{', '.join(sorted(allowed - {'$schema'}))})", data[key])
    if data.get("identity") is not None:
        warnings.append("identity has no effect on prefect-ml compute; ignored")
    settings = _parse_settings(data.get("settings"), ctx)
    try:
        settings_model = PipelineSettings.model_validate(settings)
    except PydanticValidationError as exc:
        problems.extend(translate_errors(exc, prefix="settings", file=file))
        settings_model = PipelineSettings()
    pipeline_inputs: dict[str, Input] = {}
    for key, value in (data.get("inputs") or {}).items() if isinstance(data.get("inputs") or {}, Mapping) else []:
        try:
            item = value if isinstance(value, Input) else Input.model_validate(value)
            if item.is_data and item.path is not None:
                item = item.model_copy(update={"path": _absolute_path(item.path, base)})
            pipeline_inputs[str(key)] = item
        except (ValidationError, PydanticValidationError) as exc:
            found = exc.problems if isinstance(exc, ValidationError) else translate_errors(exc)
            problems.extend(Problem(f"inputs.{key}.{p.field}".rstrip("."), p.message, p.value, file) for p in found)
    pipeline_outputs: dict[str, Output] = {}
    for key, value in (data.get("outputs") or {}).items() if isinstance(data.get("outputs") or {}, Mapping) else []:
        try:
            item = value if isinstance(value, Output) else Output.model_validate(value)
            if item.path:
                item = item.model_copy(update={"path": item.path.replace("${{default_datastore}}",
                                                                         settings_model.datastore_name)})
            pipeline_outputs[str(key)] = item
        except ValidationError as exc:
            problems.extend(Problem(f"outputs.{key}.{p.field}".rstrip("."), p.message, p.value, file)
                            for p in exc.problems)
    jobs_raw = data.get("jobs")
    if not isinstance(jobs_raw, Mapping) or not jobs_raw:
        ctx.add("jobs", "is required: a mapping of step name -> step (command or component)", jobs_raw)
        raise ValidationError(problems, file=file, title=f"Invalid pipeline job {file or ''}".strip())
    steps = {str(name): _first_pass(str(name), raw, ctx) for name, raw in jobs_raw.items()}
    for name in steps:
        if not re.match(r"^\w+$", name):
            ctx.add(f"jobs.{name}", "a step name may hold letters, digits and '_' only (it is used in "
                    "${{parent.jobs.NAME...}} bindings)", name)
    context = {"inputs": pipeline_inputs, "outputs": pipeline_outputs, "datastore": settings_model.datastore_name,
               "default_environment": settings_model.default_environment}
    normalised: dict[str, dict[str, Any]] = {}
    for name, step in steps.items():
        if not step.ok:
            continue
        result = _second_pass(step, steps, context, ctx)
        if result is not None:
            normalised[name] = result
    bound = {z for s in normalised.values() for z in s["output_bindings"].values()}
    for name in pipeline_outputs:
        if name not in bound:
            warnings.append(f"pipeline output '{name}' is not bound by any step (use ${{{{parent.outputs.{name}}}}} "
                            "in a step's outputs); it stays empty")
    if not problems:
        _check_cycles(normalised, ctx)
    if problems:
        raise ValidationError(problems, file=file, title=f"Invalid pipeline job {file or ''}".strip())
    spec_data = {**top, "type": "pipeline", "inputs": pipeline_inputs, "outputs": pipeline_outputs,
                 "settings": settings_model, "jobs": normalised, "base_path": base,
                 "source_file": str(Path(source_file).resolve()) if source_file is not None else None,
                 "warnings": warnings}
    try:
        return PipelineJob.model_validate(spec_data)
    except ValidationError as exc:
        raise ValidationError([Problem(p.field, p.message, p.value, file) for p in exc.problems], file=file) from None


def _has_objects(data: Mapping) -> bool:
    """Whether the mapping holds Python objects (components, Inputs) that must not be deep-copied."""
    jobs = data.get("jobs")
    return isinstance(jobs, Mapping) and any(isinstance(v, Mapping) and not isinstance(v.get("component"), (str,
                                             Mapping, type(None))) for v in jobs.values())


def literal_input(value: Any) -> Input:
    """An :class:`Input` for a Python literal (``5`` -> integer) or an :class:`Input` unchanged."""
    if isinstance(value, Input):
        return value
    kind = literal_type(value)
    if kind is None:
        raise ValidationError([Problem("inputs", "must be a literal or an Input", value)])
    return Input(type=kind, default=value)
