"""The ``automl`` job specification (Azure ML CLI v2 AutoML job YAML) and its Python builders.

Implements the schema of https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-tabular
(classification, regression) and https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-forecasting
(forecasting). Every problem of a file is reported at once, with the valid names for unknown algorithms,
metrics and transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from prefect_ml.automl import algorithms as alg
from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import JobSpec, Spec, SpecProblems, suggest, translate_errors
from prefect_ml.specs.inputs import Input, Output

AZURE_AUTOML_REFERENCE = "https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-tabular"
TABLE_TYPES = ("mltable", "uri_file", "uri_folder")


class AutoMLLimits(Spec):
    """``limits:``: when the search stops.

    Attributes:
        timeout_minutes: Wall-clock budget of the whole search, minutes (Azure: integer; fractions are accepted
            here for short runs). Default 360 (Azure's 6 hours) capped by ``max_trials``.
        trial_timeout_minutes: Longest time one trial may take, minutes.
        max_trials: Most trials (Azure's default 1000).
        max_concurrent_trials: Trials run at once on the job's compute (default 1).
        max_cores_per_trial: Threads a trial's model may use (-1: all cores divided by concurrent trials).
        enable_early_termination: Stop trials that are doing worse than the median of finished trials.
        exit_score: Stop the search when the primary metric reaches this value.
    """

    timeout_minutes: float | None = Field(default=None, gt=0)
    trial_timeout_minutes: float | None = Field(default=None, gt=0)
    max_trials: int = Field(default=1000, ge=1)
    max_concurrent_trials: int = Field(default=1, ge=1)
    max_cores_per_trial: int = -1
    max_nodes: int | None = None
    enable_early_termination: bool = True
    exit_score: float | None = None


class AutoMLTraining(Spec):
    """``training:``: which algorithms run and what is built from them.

    Attributes:
        allowed_training_algorithms: Only these algorithms (Azure names).
        blocked_training_algorithms: Never these algorithms.
        enable_vote_ensemble: Build a voting ensemble (greedy ensemble selection) at the end.
        enable_stack_ensemble: Build a stacking ensemble at the end.
        enable_model_explainability: Log permutation importances of the best model.
        ensemble_model_download_timeout: Accepted for compatibility; unused (models are in memory).
    """

    allowed_training_algorithms: list[str] | None = None
    blocked_training_algorithms: list[str] | None = None
    enable_vote_ensemble: bool = True
    enable_stack_ensemble: bool = True
    enable_model_explainability: bool = True
    enable_onnx_compatible_models: bool = False
    enable_dnn_training: bool = False
    ensemble_model_download_timeout: str | int | None = None
    stack_ensemble_settings: dict[str, Any] | None = None
    training_mode: str | None = None


class AutoMLFeaturization(Spec):
    """``featurization:``: how raw columns become model features (inside each model's pipeline).

    Attributes:
        mode: ``auto`` (impute, encode, datetime parts, text hashing), ``off`` (numeric columns only,
            imputed) or ``custom`` (``auto`` plus the settings below).
        blocked_transformers: Transformers not to use (Azure names).
        column_name_and_types: Column -> ``Numeric``, ``Categorical``, ``DateTime``, ``Text`` or ``Ignore``.
        transformer_params: ``imputer``: ``[{fields: [...], parameters: {strategy: mean|median|most_frequent}}]``.
    """

    mode: Literal["auto", "off", "custom"] = "auto"
    blocked_transformers: list[str] = Field(default_factory=list)
    column_name_and_types: dict[str, Literal["Numeric", "Categorical", "DateTime", "Text", "Ignore"]] = Field(
        default_factory=dict)
    transformer_params: dict[str, Any] = Field(default_factory=dict)
    enable_dnn_featurization: bool = False

    @field_validator("blocked_transformers")
    @classmethod
    def _known_transformers(cls, value: list[str]) -> list[str]:
        problems = [Problem(f"[{i}]", f"unknown transformer{suggest(t, alg.TRANSFORMERS)}; valid: "
                            + ", ".join(alg.TRANSFORMERS), t) for i, t in enumerate(value) if t not in alg.TRANSFORMERS]
        if problems:
            raise SpecProblems(problems)
        return value


class ForecastingSettings(Spec):
    """``forecasting:``: the time axis of a forecasting job.

    Attributes:
        time_column_name: The timestamp column (required).
        time_series_id_column_names: Columns identifying each series (one series when empty).
        forecast_horizon: Steps to forecast (``auto``: 1... here the default is 1).
        frequency: pandas offset alias of the series (inferred when not given).
        target_lags: Lags of the target used as features by regression models (``auto``: the seasonality).
        target_rolling_window_size: Window of rolling mean/min/max features of the target.
        country_or_region_for_holidays: ISO 3166 code (``US``, ``DE``...): regression forecasters get the number
            of its public holidays in each time step as a feature (the ``holidays`` package).
        seasonality: Season length in steps (``auto``: inferred from the frequency).
        short_series_handling_config: ``auto``/``pad``/``drop``/null: what to do with series too short to validate.
        target_aggregate_function: ``sum``/``max``/``min``/``mean``: aggregate rows that share a time step.
    """

    time_column_name: str
    time_series_id_column_names: list[str] | str | None = None
    forecast_horizon: int | Literal["auto"] = 1
    frequency: str | None = None
    target_lags: int | list[int] | Literal["auto"] | None = None
    target_rolling_window_size: int | Literal["auto"] | None = None
    country_or_region_for_holidays: str | None = None
    seasonality: int | Literal["auto"] = "auto"
    short_series_handling_config: Literal["auto", "pad", "drop"] | None = "auto"
    target_aggregate_function: Literal["sum", "max", "min", "mean"] | None = None
    use_stl: str | None = None
    feature_lags: str | None = None
    cv_step_size: int | Literal["auto"] | None = None

    def series_columns(self) -> list[str]:
        ids = self.time_series_id_column_names
        return [ids] if isinstance(ids, str) else list(ids or [])


class AutoMLJob(JobSpec):
    """An AutoML job (``type: automl``).

    Implements https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-tabular and
    https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-forecasting. Build one with
    :func:`prefect_ml.load_job` or :func:`prefect_ml.automl.classification` / ``regression`` / ``forecasting``.

    Attributes:
        task: ``classification``, ``regression`` or ``forecasting``.
        primary_metric: Azure's metric name the search optimises (default: accuracy /
            normalized_root_mean_squared_error... see :data:`~prefect_ml.automl.algorithms.PRIMARY_METRICS`).
        target_column_name: The label column.
        training_data: ``mltable`` folder, ``uri_file`` (CSV or Parquet) or a data asset (``azureml:NAME:V``).
        validation_data: Held-out data scored for model selection (default: a split or cross-validation).
        test_data: Data the best model is scored on at the end.
        validation_data_size: Fraction of the training data held out when no validation data is given.
        n_cross_validations: Folds of cross-validation (``auto``: 5 folds below 10 000 rows, else a 10 % holdout).
        weight_column_name: Sample weights column: passed to every estimator's ``fit`` and to the metrics (validation
            and test); never a feature.
        positive_label: The positive class of the binary metrics (``AUC_binary``, ``precision_score_binary``...),
            written as the label appears in the data (``"yes"``, ``1``, ``"true"``); default for two classes: the
            second label in sorted order.
        test_data_size: Fraction of the training data held out as test data.
        warnings: Notices about accepted but ignored settings (not part of Azure's schema).
    """

    type: Literal["automl"] = "automl"
    log_verbosity: str | None = None
    task: Literal["classification", "regression", "forecasting"]
    primary_metric: str | None = None
    target_column_name: str
    training_data: Input
    validation_data: Input | None = None
    test_data: Input | None = None
    validation_data_size: float | None = Field(default=None, gt=0, lt=1)
    n_cross_validations: int | Literal["auto"] | None = None
    cv_split_column_names: list[str] | None = None
    weight_column_name: str | None = None
    positive_label: str | int | float | bool | None = None
    test_data_size: float | None = Field(default=None, gt=0, lt=1)
    limits: AutoMLLimits = Field(default_factory=AutoMLLimits)
    training: AutoMLTraining = Field(default_factory=AutoMLTraining)
    featurization: AutoMLFeaturization = Field(default_factory=AutoMLFeaturization)
    forecasting: ForecastingSettings | None = None
    outputs: dict[str, Output] = Field(default_factory=dict)
    resources: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None

    @field_validator("target_column_name", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("training_data", "validation_data", "test_data", mode="before")
    @classmethod
    def _table(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"type": "mltable", "path": value}
        return value

    @model_validator(mode="after")
    def _check(self) -> AutoMLJob:
        problems: list[Problem] = []
        for field in ("training_data", "validation_data", "test_data"):
            data = getattr(self, field)
            if data is not None and (data.type not in TABLE_TYPES or not data.path):
                problems.append(Problem(f"{field}.type", "AutoML data must be an 'mltable' folder, a 'uri_file' "
                                        "(CSV or Parquet) or a data asset with a path", data.type))
        metrics = alg.PRIMARY_METRICS[self.task]
        if self.primary_metric is None:
            self.primary_metric = metrics[0]
        elif self.primary_metric not in metrics:
            problems.append(Problem("primary_metric", f"is not a {self.task} metric{suggest(self.primary_metric, metrics)};"
                                    f" valid: {', '.join(metrics)}", self.primary_metric))
        valid = alg.algorithms_for(self.task)
        for key in ("allowed_training_algorithms", "blocked_training_algorithms"):
            names = getattr(self.training, key)
            if names is None:
                continue
            canonical = []
            for i, name in enumerate(names):
                found = alg.normalise_algorithm(name, self.task)
                if found is None:
                    problems.append(Problem(f"training.{key}[{i}]", f"unknown {self.task} algorithm"
                                            f"{suggest(str(name), valid)}; valid: {', '.join(valid)}", name))
                else:
                    canonical.append(found)
            setattr(self.training, key, canonical)
        if not problems and not self.algorithms():
            problems.append(Problem("training", "every algorithm is blocked; allow at least one of "
                                    + ", ".join(valid), self.training.blocked_training_algorithms))
        if self.task != "forecasting" and self.forecasting is not None:
            problems.append(Problem("forecasting", f"only applies to forecasting jobs, not {self.task}"))
        if isinstance(self.n_cross_validations, int) and self.n_cross_validations < 2:
            problems.append(Problem("n_cross_validations", "must be at least 2 (or 'auto')", self.n_cross_validations))
        if self.validation_data is not None and (self.n_cross_validations not in (None, "auto")
                                                 or self.validation_data_size is not None):
            problems.append(Problem("validation_data", "give validation_data, validation_data_size or "
                                    "n_cross_validations, not several"))
        if self.positive_label is not None and self.task != "classification":
            problems.append(Problem("positive_label", "only applies to classification"))
        if self.compute not in (None, "", "local", "azureml:local"):
            pass  # checked in preflight against compute targets
        for present, text in ((self.identity, "identity is accepted but has no effect in prefect-ml"),
                              (self.featurization.enable_dnn_featurization,
                               "featurization.enable_dnn_featurization is not supported; ignored"),
                              (self.training.enable_dnn_training, "training.enable_dnn_training is not supported; ignored")):
            if present and text not in self.warnings:
                self.warnings.append(text)
        if problems:
            raise SpecProblems(problems)
        return self

    def __init__(self, **data: Any):
        from pydantic import ValidationError as PydanticValidationError

        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc), title="Invalid automl job") from None

    # -- helpers ---------------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Cross-field problems checked when the job is complete (at load and before it runs)."""
        if self.task == "forecasting" and self.forecasting is None:
            return [Problem("forecasting", "is required for a forecasting job: set at least time_column_name "
                            "(YAML `forecasting: {time_column_name: ...}` or job.set_forecast_settings(...))")]
        return []

    def algorithms(self) -> list[str]:
        """The algorithms the search may use: allowed (or the task's defaults) minus blocked."""
        allowed = self.training.allowed_training_algorithms or list(alg.DEFAULT_ALGORITHMS[self.task])
        blocked = set(self.training.blocked_training_algorithms or ())
        return [a for a in allowed if a not in blocked]

    def data_inputs(self) -> dict[str, Input]:
        return {k: v for k, v in (("training_data", self.training_data), ("validation_data", self.validation_data),
                                  ("test_data", self.test_data)) if v is not None}

    def resolve_path(self, data: Input) -> str:
        """The input's location with relative paths resolved against the job file's folder."""
        from prefect_ml.data import resolve_uri

        return resolve_uri(data.path, base_path=self.base_path)

    # -- Azure SDK-style setters (return self) -------------------------------------------------------

    def set_limits(self, **limits: Any) -> AutoMLJob:
        """Set ``limits`` fields (``timeout_minutes``, ``max_trials``, ``max_concurrent_trials``...).

        Raises:
            ValidationError: A limit is unknown or invalid.
        """
        return self._set("limits", limits)

    def set_training(self, **training: Any) -> AutoMLJob:
        """Set ``training`` fields (``allowed_training_algorithms``, ``enable_stack_ensemble``...)."""
        return self._set("training", training)

    def set_featurization(self, **featurization: Any) -> AutoMLJob:
        """Set ``featurization`` fields (``mode``, ``blocked_transformers``, ``column_name_and_types``...)."""
        return self._set("featurization", featurization)

    def set_forecast_settings(self, **settings: Any) -> AutoMLJob:
        """Set ``forecasting`` fields (``time_column_name``, ``forecast_horizon``...)."""
        return self._set("forecasting", settings)

    def set_data(self, **data: Any) -> AutoMLJob:
        """Set top-level fields (``training_data``, ``validation_data``, ``test_data``, ``n_cross_validations``...)."""
        new = self.model_dump(mode="json", by_alias=True, exclude={"warnings"})
        new.update({k: _plain(v) for k, v in data.items()})
        self._replace(new)
        return self

    def _set(self, section: str, values: dict[str, Any]) -> AutoMLJob:
        new = self.model_dump(mode="json", by_alias=True, exclude={"warnings"})
        current = new.get(section) or {}
        current.update(values)
        new[section] = current
        self._replace(new)
        return self

    def _replace(self, data: dict[str, Any]) -> None:
        try:
            fresh = AutoMLJob(**data)
        except ValidationError as exc:
            raise ValidationError(exc.problems, title="Invalid automl settings") from None
        for name in type(self).model_fields:
            object.__setattr__(self, name, getattr(fresh, name))


def _plain(value: Any) -> Any:
    if isinstance(value, Input):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Path):
        return str(value)
    return value


def parse(data: dict[str, Any], *, base_path: Any, source_file: Any, file: str | None,
          problems: list[Problem]) -> AutoMLJob:
    """Validate the mapping of an automl job file; see :mod:`prefect_ml.job_kinds`.

    Raises:
        ValidationError: Every problem (including ``problems`` given) at once.
    """
    from pydantic import ValidationError as PydanticValidationError

    data = dict(data)
    if base_path is not None:
        data["base_path"] = str(Path(base_path).expanduser().resolve())
    if source_file is not None:
        data["source_file"] = str(Path(source_file).expanduser().resolve())
    job = None
    try:
        job = AutoMLJob.model_validate(data)
    except PydanticValidationError as exc:
        problems = problems + translate_errors(exc, file=file)
    except ValidationError as exc:
        problems = problems + [Problem(p.field, p.message, p.value, file) for p in exc.problems]
    if job is not None:
        problems = problems + [Problem(p.field, p.message, p.value, file) for p in job.problems()]
    if problems:
        raise ValidationError(problems, file=file, title=f"Invalid automl job file {file}" if file else
                              "Invalid automl job")
    assert job is not None
    return job


def _builder(task: str, *, training_data: Any, target_column_name: str, primary_metric: str | None = None,
             validation_data: Any = None, test_data: Any = None, **kwargs: Any) -> AutoMLJob:
    data: dict[str, Any] = {"type": "automl", "task": task, "target_column_name": target_column_name,
                            "training_data": _plain(training_data)}
    if primary_metric is not None:
        data["primary_metric"] = primary_metric
    if validation_data is not None:
        data["validation_data"] = _plain(validation_data)
    if test_data is not None:
        data["test_data"] = _plain(test_data)
    for key, value in kwargs.items():
        if value is not None:
            data[key] = _plain(value)
    data.setdefault("base_path", str(Path.cwd()))
    return AutoMLJob(**data)


def classification(*, training_data: Any, target_column_name: str, primary_metric: str | None = None,
                   **kwargs: Any) -> AutoMLJob:
    """A classification AutoML job, as Azure's ``azure.ai.ml.automl.classification``.

    Args:
        training_data: An :class:`~prefect_ml.Input` (``mltable``/``uri_file``) or a path (an MLTable folder).
        target_column_name: The label column.
        primary_metric: One of accuracy, AUC_weighted, average_precision_score_weighted, norm_macro_recall,
            precision_score_weighted (default accuracy).
        **kwargs: Other top-level fields: ``validation_data``, ``test_data``, ``n_cross_validations``,
            ``validation_data_size``, ``weight_column_name``, ``positive_label``, ``name``,
            ``experiment_name``, ``compute``, ``limits``, ``training``, ``featurization``...

    Returns:
        The job; adjust it with ``set_limits``, ``set_training``, ``set_featurization``.

    Raises:
        ValidationError: Every problem at once.
    """
    return _builder("classification", training_data=training_data, target_column_name=target_column_name,
                    primary_metric=primary_metric, **kwargs)


def regression(*, training_data: Any, target_column_name: str, primary_metric: str | None = None,
               **kwargs: Any) -> AutoMLJob:
    """A regression AutoML job (see :func:`classification`; metrics: spearman_correlation,
    normalized_root_mean_squared_error, r2_score, normalized_mean_absolute_error)."""
    return _builder("regression", training_data=training_data, target_column_name=target_column_name,
                    primary_metric=primary_metric, **kwargs)


def forecasting(*, training_data: Any, target_column_name: str, primary_metric: str | None = None,
                forecasting_settings: dict[str, Any] | None = None, **kwargs: Any) -> AutoMLJob:
    """A forecasting AutoML job; set the time axis with ``set_forecast_settings(time_column_name=...)``
    or ``forecasting_settings={...}`` (see :class:`ForecastingSettings`)."""
    kwargs["forecasting"] = forecasting_settings
    return _builder("forecasting", training_data=training_data, target_column_name=target_column_name,
                    primary_metric=primary_metric, **kwargs)
