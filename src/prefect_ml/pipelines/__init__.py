"""Pipelines and components: the component registry and the Python DSL (:func:`pipeline`,
:func:`command_component`). The YAML models live in :mod:`prefect_ml.specs.pipeline` and
:mod:`prefect_ml.specs.component`; the flow in :mod:`prefect_ml.flows.pipeline_job`.
"""

from prefect_ml.pipelines.dsl import command_component, pipeline
from prefect_ml.pipelines.registry import create_component, get_component, list_components

__all__ = ["command_component", "create_component", "get_component", "list_components", "pipeline"]
