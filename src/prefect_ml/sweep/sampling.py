"""Sampling a sweep's search space with Optuna, in a study that persists under the job's folder.

``sampling_algorithm`` -> Optuna sampler: ``random`` -> ``RandomSampler(seed)``; ``random`` with
``rule: sobol`` -> ``QMCSampler(qmc_type="sobol", scramble=True, seed)``; ``bayesian`` ->
``TPESampler(seed)``; ``grid``: every point of the choice grid is enqueued once, in an order shuffled
by ``seed``, with Optuna's ``Study.enqueue_trial`` (Optuna's ``GridSampler`` calls ``Study.stop`` when
the grid is exhausted, which ask-and-tell studies do not allow).

Optuna samples each parameter's *underlying* variable and :func:`to_value` maps it to Azure's value:
``uniform``/``quniform`` sample ``uniform(min_value, max_value)``; ``loguniform``/``qloguniform`` the
exponent ``uniform(min_value, max_value)``; the normal family the cumulative probability ``u`` in (0, 1)
(``normal = NormalDist(mu, sigma).inv_cdf(u)``), so that every sampler, Sobol included, covers them.

The study lives in an Optuna ``JournalStorage`` file (``optuna.journal``) and the sampler (with its
random state) is pickled after each draw (``sampler.pkl``), so a resumed sweep continues the same
sequence instead of repeating it.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

from prefect_ml.specs.sweep import (
    Choice, LogUniform, QLogUniform, QUniform, RandInt, SweepDistribution, SweepJob, Uniform, _Gaussian,
)


def optuna_distribution(dist: SweepDistribution):
    """The Optuna distribution of ``dist``'s underlying variable."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, Choice):
        return CategoricalDistribution(dist.values)
    if isinstance(dist, RandInt):
        return IntDistribution(0, dist.upper - 1)
    if isinstance(dist, (Uniform, LogUniform, QUniform, QLogUniform)):
        return FloatDistribution(dist.min_value, dist.max_value)
    if isinstance(dist, _Gaussian):
        return FloatDistribution(0.0, 1.0)
    raise TypeError(f"unsupported distribution {dist!r}")


def to_value(dist: SweepDistribution, raw: Any) -> Any:
    """Map Optuna's sample of the underlying variable to the parameter's value (Azure's definition)."""
    if isinstance(dist, (Choice, RandInt)):
        return raw
    if isinstance(dist, _Gaussian):
        return dist.transform_quantile(float(raw))
    return dist.transform_uniform(float(raw))


def grid_size(job: SweepJob) -> int | None:
    """Number of grid points (grid sampling), else None."""
    if job.sampling_algorithm.type != "grid":
        return None
    return math.prod(len(d.values) for d in job.search_space.values())


def grid_points(job: SweepJob) -> list[dict[str, Any]]:
    """Every point of a grid sweep's choice grid, in an order shuffled by ``sampling_algorithm.seed``."""
    import itertools
    import random

    names = list(job.search_space)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(job.search_space[n].values for n in names))]
    random.Random(job.sampling_algorithm.seed).shuffle(points)
    return points


def make_sampler(job: SweepJob):
    """A fresh Optuna sampler for ``job.sampling_algorithm``."""
    import optuna

    algo = job.sampling_algorithm
    if algo.type == "grid":  # the grid points are enqueued by SweepStudy (see grid_points)
        return optuna.samplers.RandomSampler(seed=algo.seed)
    if algo.type == "bayesian":
        return optuna.samplers.TPESampler(seed=algo.seed)
    if algo.rule == "sobol":
        import secrets
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                qmc_type="sobol", scramble=True, seed=algo.seed if algo.seed is not None else secrets.randbits(31),
                warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=algo.seed)


class SweepStudy:
    """The sweep's Optuna study, persisted in ``folder``.

    Args:
        job: The sweep.
        folder: Where ``optuna.journal`` and ``sampler.pkl`` live (created if needed).
        study_name: The study's name (the sweep job's name).
    """

    def __init__(self, job: SweepJob, folder: str | Path, study_name: str):
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.job = job
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sampler_path = self.folder / "sampler.pkl"
        sampler = None
        if self._sampler_path.exists():
            with open(self._sampler_path, "rb") as fh:
                sampler = pickle.load(fh)
        journal = str(self.folder / "optuna.journal")
        storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
        self.study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler or make_sampler(job),
                                         direction=job.goal, load_if_exists=True)
        self.distributions = {n: optuna_distribution(d) for n, d in job.search_space.items()}
        if job.sampling_algorithm.type == "grid" and not self.study.get_trials(deepcopy=False):
            for point in grid_points(job):
                self.study.enqueue_trial(point)

    def ask(self):
        """Draw the next configuration; returns ``(optuna_trial, {name: value})``."""
        trial = self.study.ask(self.distributions)
        # written whole, then renamed: a sweep killed mid-write leaves the previous sampler, not half a pickle
        partial = self._sampler_path.with_suffix(".pkl.partial")
        with open(partial, "wb") as fh:
            pickle.dump(self.study.sampler, fh)
        os.replace(partial, self._sampler_path)
        values = {n: to_value(self.job.search_space[n], trial.params[n]) for n in self.job.search_space}
        return trial, values
