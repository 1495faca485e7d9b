"""The ``environment`` of a command job: a reference to a registered environment, or an inline one.

Implements the ``environment`` key of
https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
(and the inline form of https://learn.microsoft.com/azure/machine-learning/reference-yaml-environment).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import model_validator

from prefect_ml.exceptions import Problem
from prefect_ml.specs._base import Spec, SpecProblems

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REFERENCE_FORMS = (
    (re.compile(rf"^azureml://registries/(?P<registry>{_NAME})/environments/(?P<name>{_NAME})"
                rf"/labels/(?P<label>{_NAME})$"), True),
    (re.compile(rf"^azureml://registries/(?P<registry>{_NAME})/environments/(?P<name>{_NAME})"
                rf"/versions/(?P<version>{_NAME})$"), True),
    (re.compile(rf"^(?P<name>{_NAME})@(?P<label>{_NAME})$"), False),
    (re.compile(rf"^(?P<name>{_NAME}):(?P<version>{_NAME})$"), False),
    (re.compile(rf"^(?P<name>{_NAME})$"), False),
)
_REFERENCE_HELP = ("expected 'azureml:NAME@latest', 'azureml:NAME:VERSION', 'azureml:NAME', "
                   "'azureml://registries/REGISTRY/environments/NAME/labels/LABEL', "
                   "'azureml://registries/REGISTRY/environments/NAME/versions/VERSION' or an inline mapping "
                   "with 'image' (or 'build')")
_INLINE_KEYS = ("image", "conda_file", "build", "name", "version", "description", "inference_config", "os_type")


def parse_reference(reference: str) -> dict[str, str | None]:
    """Split an environment reference into ``name``, ``version``, ``label`` and ``registry``.

    Raises:
        SpecProblems: The reference has none of the accepted forms.
    """
    text = reference.strip()
    for pattern, is_uri in _REFERENCE_FORMS:
        if is_uri:
            match = pattern.match(text)
        elif text.startswith("azureml://"):
            match = None
        else:
            match = pattern.match(text[len("azureml:"):] if text.startswith("azureml:") else text)
        if match:
            parts = match.groupdict()
            return {"reference": text, "name": parts.get("name"), "version": parts.get("version"),
                    "label": parts.get("label"), "registry": parts.get("registry")}
    raise SpecProblems([Problem("", f"malformed environment reference; {_REFERENCE_HELP}", reference)])


class EnvironmentSpec(Spec):
    """Normalised ``environment`` of a job.

    Either a reference to a registered environment (``azureml:NAME@latest``, ``azureml:NAME:VERSION``,
    ``azureml:NAME``, ``azureml://registries/REG/environments/NAME/labels/LABEL``,
    ``azureml://registries/REG/environments/NAME/versions/V`` or a plain name), or an inline
    environment (``image``, ``conda_file``, ``build: {path, dockerfile_path}``, ...) as documented at
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.

    Attributes:
        reference: The reference string as given; None for an inline environment.
        name: Environment name (from the reference, or the inline ``name``).
        version: Version, when given.
        label: Label (``latest``), when given.
        registry: Registry of an ``azureml://registries/...`` reference.
        image: Docker image of an inline environment.
        conda_file: Path (relative to the job file) or inline mapping of a conda specification.
        build_path: ``build.path``: Docker build context (relative to the job file).
        dockerfile_path: ``build.dockerfile_path``, relative to the build context.
        description: Free text.
        inference_config: Inline ``inference_config`` (accepted, unused).
        os_type: ``linux`` or ``windows``.
    """

    reference: str | None = None
    name: str | None = None
    version: str | None = None
    label: str | None = None
    registry: str | None = None
    image: str | None = None
    conda_file: Any = None
    build_path: str | None = None
    dockerfile_path: str | None = None
    description: str | None = None
    inference_config: dict[str, Any] | None = None
    os_type: str | None = None

    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, EnvironmentSpec):
            return data
        if isinstance(data, str):
            return parse_reference(data)
        if not isinstance(data, dict):
            raise SpecProblems([Problem("", f"must be a reference string or a mapping; {_REFERENCE_HELP}", data)])
        data = dict(data)
        if data.get("reference") is not None:
            if not isinstance(data["reference"], str):
                raise SpecProblems([Problem("reference", "must be a string", data["reference"])])
            data.update(parse_reference(data["reference"]))
        build = data.pop("build", None)
        if build is not None:
            if not isinstance(build, dict):
                raise SpecProblems([Problem("build", "must be a mapping with 'path' and 'dockerfile_path'", build)])
            unknown = set(build) - {"path", "dockerfile_path"}
            if unknown:
                raise SpecProblems([Problem(f"build.{sorted(unknown)[0]}",
                                            "unknown field (allowed: path, dockerfile_path)")])
            data["build_path"] = build.get("path")
            data["dockerfile_path"] = build.get("dockerfile_path")
        if data.get("version") is not None:
            data["version"] = str(data["version"])
        return data

    @model_validator(mode="after")
    def _check(self) -> EnvironmentSpec:
        if self.reference is None:
            problems = []
            if self.image is None and self.build_path is None:
                problems.append(Problem("image", "an inline environment needs 'image' (or 'build: {path: ...}')"))
            if self.conda_file is not None and not isinstance(self.conda_file, (str, dict)):
                problems.append(Problem("conda_file", "must be a path or an inline mapping", self.conda_file))
            if problems:
                raise SpecProblems(problems)
        return self

    @property
    def is_inline(self) -> bool:
        """Whether the environment is defined inline (not a reference)."""
        return self.reference is None

    @property
    def is_curated(self) -> bool:
        """Whether this refers to an Azure curated environment (``AzureML-*`` or the ``azureml`` registry)."""
        return self.reference is not None and (
            (self.name or "").startswith("AzureML-") or self.registry == "azureml")

    def to_yaml(self) -> Any:
        """Azure-style YAML value: the reference string, or the inline mapping."""
        if self.reference is not None:
            return self.reference
        data: dict[str, Any] = {}
        for key in _INLINE_KEYS:
            if key == "build":
                if self.build_path is not None:
                    data["build"] = {k: v for k, v in (("path", self.build_path),
                                                       ("dockerfile_path", self.dockerfile_path)) if v is not None}
                continue
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data
