"""Pipelines and components in Python, in the style of Azure ML's ``dsl.pipeline`` and ``command_component``.

Example::

    from prefect_ml import Input, load_component, pipeline

    prep = load_component("components/prepare.yml")
    train = load_component("components/train.yml")

    @pipeline(compute="local", description="prepare and train")
    def training(raw_data, max_iter=200):
        prepared = prep(raw_data=raw_data)
        trained = train(train_data=prepared.outputs.train_data, max_iter=max_iter)
        return {"model": trained.outputs.model}

    job = training(raw_data=Input(type="uri_file", path="data.csv"))
    job.settings.default_compute = "local"
    MLClient().jobs.create_or_update(job)

A :func:`pipeline` function, when called, builds the same mapping as a ``type: pipeline`` YAML file and
parses it with :func:`prefect_ml.specs.pipeline.parse_pipeline`, so both give the same steps. See
https://learn.microsoft.com/azure/machine-learning/how-to-create-component-pipeline-python.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from pathlib import Path
from typing import Any, Callable

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs.inputs import Input, Output

_BUILDER: contextvars.ContextVar["_Builder | None"] = contextvars.ContextVar("prefect_ml_pipeline", default=None)


class PipelineInput:
    """A pipeline parameter inside a :func:`pipeline` function: ``${{parent.inputs.NAME}}`` when bound."""

    def __init__(self, name: str):
        self.name = name

    @property
    def binding(self) -> str:
        return "${{parent.inputs." + self.name + "}}"

    def __repr__(self) -> str:
        return self.binding


class OutputRef:
    """An output of a step: ``${{parent.jobs.STEP.outputs.NAME}}`` when bound to a later step's input."""

    def __init__(self, node: "StepNode", name: str):
        self.node = node
        self.name = name

    @property
    def binding(self) -> str:
        return "${{parent.jobs." + self.node.name + ".outputs." + self.name + "}}"

    def __repr__(self) -> str:
        return self.binding


class _Outputs:
    def __init__(self, node: "StepNode", names: list[str]):
        self._node = node
        self._names = names

    def __getattr__(self, name: str) -> OutputRef:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._names:
            raise AttributeError(f"step {self._node.name} has no output {name!r} (outputs: "
                                 f"{', '.join(self._names) or 'none'})")
        return OutputRef(self._node, name)

    def __getitem__(self, name: str) -> OutputRef:
        return self.__getattr__(name)


class StepNode:
    """A step added by calling a component inside a :func:`pipeline` function.

    Attributes:
        name: The step's name (the component's name, ``_2``... when used again); may be changed.
        component: The component it runs.
        inputs: Input values and bindings, by name.
        outputs: ``step.outputs.NAME`` gives the binding of output NAME.
        compute: The step's compute (None: the pipeline's default).
        environment_variables: Extra environment variables.
        display_name: Name shown in the UI.
        force_rerun: Never reuse this step.
    """

    def __init__(self, name: str, component, inputs: dict[str, Any]):
        self.name = name
        self.component = component
        self.inputs = inputs
        self.outputs = _Outputs(self, list(component.outputs))
        self.output_settings: dict[str, Any] = {}
        self.compute: str | None = None
        self.environment_variables: dict[str, str] | None = None
        self.display_name: str | None = None
        self.force_rerun: bool | None = None

    def to_yaml(self) -> dict[str, Any]:
        def value(v: Any) -> Any:
            if isinstance(v, (PipelineInput, OutputRef)):
                return v.binding
            if isinstance(v, Input):
                return v.model_dump(exclude_none=True)
            if isinstance(v, Path):
                return str(v)
            return v

        data: dict[str, Any] = {"type": "command", "component": self.component,
                                "inputs": {k: value(v) for k, v in self.inputs.items() if v is not None}}
        if self.output_settings:
            data["outputs"] = dict(self.output_settings)
        for key in ("compute", "environment_variables", "display_name", "force_rerun"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


class _Builder:
    def __init__(self):
        self.steps: dict[str, StepNode] = {}

    def add(self, component, inputs: dict[str, Any]) -> StepNode:
        unknown = [k for k in inputs if k not in component.inputs]
        if unknown:
            raise ValidationError([Problem(f"inputs.{k}", f"component {component.name} has no input {k!r} (its "
                                           f"inputs: {', '.join(component.inputs) or 'none'})") for k in unknown])
        name = component.name
        n = 1
        while name in self.steps:
            n += 1
            name = f"{component.name}_{n}"
        node = StepNode(name, component, dict(inputs))
        self.steps[name] = node
        return node


def add_step(component, inputs: dict[str, Any]) -> StepNode:
    """Add a step running ``component`` to the pipeline being built (see :meth:`CommandComponent.__call__`).

    Raises:
        ValidationError: Not inside a :func:`pipeline` function, or an unknown input.
    """
    builder = _BUILDER.get()
    if builder is None:
        raise ValidationError([Problem("", f"component {component.name} was called outside a @pipeline function; "
                                       "call it inside one (or run it as a command job with component.to_job())")])
    return builder.add(component, inputs)


def pipeline(func: Callable | None = None, *, name: str | None = None, display_name: str | None = None,
             description: str | None = None, experiment_name: str | None = None, compute: str | None = None,
             default_datastore: str | None = None, continue_on_step_failure: bool | None = None,
             force_rerun: bool | None = None, tags: dict[str, str] | None = None):
    """Decorate a function that calls components into a pipeline factory (Azure's ``dsl.pipeline``).

    The function's parameters are the pipeline's inputs; calling the decorated function with values
    (literals or :class:`Input` objects; parameter defaults apply) returns a
    :class:`prefect_ml.specs.pipeline.PipelineJob`. Inside it, each component call adds a step; the
    function returns a mapping of pipeline output names to step outputs (``step.outputs.NAME``), or None.

    Args:
        name: The pipeline job's name (default: generated at submission).
        display_name: Display name (default: the function's name).
        description: Free text (default: the function's docstring).
        experiment_name: MLflow experiment.
        compute: ``settings.default_compute``.
        default_datastore: ``settings.default_datastore``.
        continue_on_step_failure: ``settings.continue_on_step_failure``.
        force_rerun: ``settings.force_rerun``.
        tags: Tags of the pipeline job.

    Raises:
        ValidationError: (when called) invalid bindings, unknown inputs, cycles... as for YAML pipelines.
    """

    def decorate(fn: Callable):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any):
            from prefect_ml.specs.pipeline import literal_input, parse_pipeline

            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            inputs: dict[str, Any] = {}
            params: dict[str, PipelineInput] = {}
            for pname, value in bound.arguments.items():
                params[pname] = PipelineInput(pname)
                if value is None or value is inspect.Parameter.empty:
                    continue
                item = literal_input(str(value) if isinstance(value, Path) else value)
                inputs[pname] = item.model_dump(exclude_none=True)
            builder = _Builder()
            token = _BUILDER.set(builder)
            try:
                returned = fn(**params)
            finally:
                _BUILDER.reset(token)
            missing = [p for p in params if p not in inputs]
            outputs: dict[str, Any] = {}
            if returned is not None:
                if not isinstance(returned, dict) or not all(isinstance(v, OutputRef) for v in returned.values()):
                    raise ValidationError([Problem("return", "a @pipeline function returns None or a dict of "
                                                   "pipeline output name -> step.outputs.NAME", returned)])
                for out_name, ref in returned.items():
                    out_type = ref.node.component.outputs[ref.name].type
                    outputs[out_name] = {"type": out_type}
                    ref.node.output_settings[ref.name] = "${{parent.outputs." + out_name + "}}"
            data: dict[str, Any] = {
                "type": "pipeline", "display_name": display_name or fn.__name__,
                "description": description or inspect.getdoc(fn), "inputs": inputs, "outputs": outputs,
                "jobs": {n: node.to_yaml() for n, node in builder.steps.items()},
            }
            for key, value in (("name", name), ("experiment_name", experiment_name), ("tags", tags)):
                if value is not None:
                    data[key] = value
            settings = {k: v for k, v in (("default_compute", compute), ("default_datastore", default_datastore),
                                          ("continue_on_step_failure", continue_on_step_failure),
                                          ("force_rerun", force_rerun)) if v is not None}
            if settings:
                data["settings"] = settings
            used = {p for node in builder.steps.values() for v in node.inputs.values()
                    if isinstance(v, PipelineInput) for p in [v.name]}
            unbound = [p for p in missing if p in used]
            if unbound:
                # an unbound parameter is an optional pipeline input; steps using it get no value
                for p in unbound:
                    data["inputs"][p] = {"type": "string", "optional": True}
            return parse_pipeline(data, base_path=Path.cwd())

        build.pipeline_function = fn  # type: ignore[attr-defined]
        return build

    return decorate(func) if func is not None else decorate


# ------------------------------------------------------------------------------------ components
_LITERAL_ANNOTATIONS = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _parameter_io(param: inspect.Parameter) -> tuple[str, Input | Output]:
    annotation = param.annotation
    default = None if param.default is inspect.Parameter.empty else param.default
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, annotation)
    if isinstance(annotation, Output) or annotation is Output:
        return "output", annotation if isinstance(annotation, Output) else Output()
    if isinstance(annotation, Input) or annotation is Input:
        item = annotation if isinstance(annotation, Input) else Input(type="uri_folder")
        if param.default is not inspect.Parameter.empty and default is None:
            item = item.model_copy(update={"optional": True})
        return "input", item
    if annotation in _LITERAL_ANNOTATIONS:
        kind = _LITERAL_ANNOTATIONS[annotation]
        optional = param.default is not inspect.Parameter.empty and default is None
        return "input", Input(type=kind, default=default, optional=optional)
    raise ValidationError([Problem(f"parameters.{param.name}", "annotate it with int, float, bool, str, "
                                   "Input(type=...) or Output(type=...)", str(annotation))],
                          title="Invalid @command_component")


def command_component(func: Callable | None = None, *, name: str | None = None, version: str | None = None,
                      display_name: str | None = None, description: str | None = None,
                      environment: Any = None, is_deterministic: bool = True, code: str | os.PathLike | None = None):
    """Turn a typed Python function into a command component (Azure's ``mldesigner.command_component``).

    Parameters annotated ``int``/``float``/``bool``/``str`` are literal inputs (their defaults the
    component's defaults; a ``None`` default makes them optional); ``Input(type=...)`` parameters are data
    inputs and ``Output(type=...)`` parameters outputs: the function receives their local paths. The
    component's command runs the function with ``python -m prefect_ml.pipelines.runner MODULE:FUNCTION``
    from a snapshot of the function's folder (or ``code``).

    Returns:
        A :class:`prefect_ml.specs.component.CommandComponent` (call it inside a :func:`pipeline`).

    Raises:
        ValidationError: A parameter has no supported annotation.
    """

    def decorate(fn: Callable):
        from prefect_ml.specs.component import parse_component

        source = Path(inspect.getfile(fn)).resolve()
        folder = Path(code).resolve() if code is not None else source.parent
        module = ".".join(source.relative_to(folder).with_suffix("").parts)
        inputs: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        parts = [f"python -m prefect_ml.pipelines.runner {module}:{fn.__qualname__}"]
        for param in inspect.signature(fn).parameters.values():
            role, item = _parameter_io(param)
            if role == "output":
                outputs[param.name] = item.model_dump(exclude_none=True)
                parts.append(f"--{param.name} ${{{{outputs.{param.name}}}}}")
            else:
                inputs[param.name] = item.model_dump(exclude_none=True)
                arg = f"--{param.name} ${{{{inputs.{param.name}}}}}"
                parts.append(f"$[[{arg}]]" if item.optional else arg)
        data = {"name": name or fn.__name__, "version": version, "display_name": display_name,
                "description": description or inspect.getdoc(fn), "code": str(folder), "command": " ".join(parts),
                "environment": environment, "inputs": inputs, "outputs": outputs,
                "is_deterministic": is_deterministic}
        component = parse_component({k: v for k, v in data.items() if v is not None}, base_path=folder)
        component._python_function = fn
        return component

    return decorate(func) if func is not None else decorate
