"""Early-termination policies of sweep jobs, as pure functions of the trials' metric histories.

Implements the policies of
https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#early-termination
for both goals (Azure documents ``maximize`` only; the ``minimize`` rule of each function mirrors it).

Vocabulary (Azure's): an *interval* is one report of the primary metric; a trial's ``n``-th report
(1-based, in the order logged) is its interval ``n``, whatever ``step`` it was logged with.
A policy is *due* at interval ``n`` when ``n >= delay_evaluation`` and ``n`` is a multiple of
``evaluation_interval`` (0 counts as 1): with ``evaluation_interval=1, delay_evaluation=5`` the policy
is applied at every interval starting at interval 5, as in Azure's examples.

The sweep applies the policy to every running trial at each poll, at the trial's *comparison interval*
``m`` (:func:`comparison_interval`: its latest due interval that some other trial also reached), against
every other trial (running or finished) that has reported interval ``m``. Because peers are taken as
they arrive, the policy also acts on the first batch of trials (no finished trial needed).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

#: Trial id -> the primary metric's values in the order logged (interval n is ``values[n - 1]``).
Histories = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Decision:
    """The outcome of applying a policy to one trial.

    Attributes:
        terminate: Whether to cancel the trial now.
        interval: The interval the policy was applied at (0 when not due).
        reason: Why, in words (logged and recorded on the trial).
    """

    terminate: bool
    interval: int = 0
    reason: str = ""


KEEP = Decision(False)


def is_due(n: int, evaluation_interval: int, delay_evaluation: int) -> bool:
    """Whether a policy applies at interval ``n`` (1-based)."""
    every = max(1, int(evaluation_interval or 0))
    return n >= 1 and n >= int(delay_evaluation or 0) and n % every == 0


def latest_due_interval(n: int, evaluation_interval: int, delay_evaluation: int) -> int:
    """The largest due interval ``<= n``, or 0 when none is."""
    every = max(1, int(evaluation_interval or 0))
    m = n - n % every
    return m if m >= 1 and m >= int(delay_evaluation or 0) else 0


def comparison_interval(trial: str, histories: Histories, evaluation_interval: int, delay_evaluation: int) -> int:
    """The interval a trial is judged at: its latest due interval that another trial has also reached.

    A trial ahead of all its peers is judged at the latest due interval some peer has reported, so that
    it is compared at all (in Azure the policy runs as each report arrives; here peers reporting later
    are taken into account). Returns its latest due interval when no peer reached any (nothing to
    compare), 0 when none is due.
    """
    own = len(histories.get(trial, ()))
    latest = latest_due_interval(own, evaluation_interval, delay_evaluation)
    if not latest:
        return 0
    reached = max((len(v) for tid, v in histories.items() if tid != trial), default=0)
    if reached >= latest:
        return latest
    m = latest_due_interval(reached, evaluation_interval, delay_evaluation)
    return m or latest


def _best(values: Sequence[float], goal: str) -> float:
    return max(values) if goal == "maximize" else min(values)


def _better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "maximize" else a < b


def _peers(histories: Histories, m: int, exclude: set[str] = frozenset()) -> dict[str, Sequence[float]]:
    return {tid: vals for tid, vals in histories.items() if len(vals) >= m and tid not in exclude}


def bandit(trial: str, histories: Histories, goal: str, *, slack_factor: float | None = None,
           slack_amount: float | None = None, evaluation_interval: int = 1, delay_evaluation: int = 0) -> Decision:
    """Bandit policy: end a trial whose best value is not within the slack of the best trial's.

    At the trial's latest due interval ``m``, let ``b`` be the trial's best value over intervals
    ``1..m`` and ``B`` the best such value over all trials that reached ``m`` (the trial included).

    - maximize: terminate if ``b < B / (1 + slack_factor)`` or ``b < B - slack_amount``
      (Azure: best 0.8, slack_factor 0.1 ends trials below 0.727; slack_amount 0.2 ends those below 0.6).
    - minimize: terminate if ``b > B * (1 + slack_factor)`` or ``b > B + slack_amount``.

    ``slack_factor`` assumes a positive metric (as in Azure's definition).

    Source: https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#bandit-policy

    Args:
        trial: Id of the trial to decide on.
        histories: Every trial's reported values (the trial's own included).
        goal: ``maximize`` or ``minimize``.
    """
    own = histories.get(trial, ())
    m = comparison_interval(trial, histories, evaluation_interval, delay_evaluation)
    if not m:
        return KEEP
    b = _best(own[:m], goal)
    best = _best([_best(v[:m], goal) for v in _peers(histories, m).values()], goal)
    if goal == "maximize":
        limit = best / (1 + slack_factor) if slack_factor else best - (slack_amount or 0.0)
        out = b < limit
    else:
        limit = best * (1 + slack_factor) if slack_factor else best + (slack_amount or 0.0)
        out = b > limit
    if out:
        return Decision(True, m, f"bandit: best {b:.6g} at interval {m} is {'below' if goal == 'maximize' else 'above'} "
                                 f"{limit:.6g} (best trial {best:.6g}, slack "
                                 f"{'factor ' + str(slack_factor) if slack_factor else 'amount ' + str(slack_amount)})")
    return Decision(False, m)


def median_stopping(trial: str, histories: Histories, goal: str, *, evaluation_interval: int = 1,
                    delay_evaluation: int = 0) -> Decision:
    """Median stopping: end a trial whose best value is worse than the median of the others' running averages.

    At the trial's latest due interval ``m``: ``b`` = the trial's best value over ``1..m``; for every
    *other* trial that reached ``m``, its running average over ``1..m``; ``M`` = the median of those.

    - maximize: terminate if ``b < M``.
    - minimize: terminate if ``b > M``.

    No other trial at ``m``: keep. Source:
    https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#median-stopping-policy
    """
    own = histories.get(trial, ())
    m = comparison_interval(trial, histories, evaluation_interval, delay_evaluation)
    if not m:
        return KEEP
    others = _peers(histories, m, exclude={trial})
    if not others:
        return Decision(False, m)
    b = _best(own[:m], goal)
    median = statistics.median(sum(v[:m]) / m for v in others.values())
    if _better(median, b, goal):
        return Decision(True, m, f"median_stopping: best {b:.6g} at interval {m} is worse than the median "
                                 f"{median:.6g} of {len(others)} other trial(s)' running averages")
    return Decision(False, m)


def truncation_selection(trial: str, histories: Histories, goal: str, *, truncation_percentage: int,
                         evaluation_interval: int = 1, delay_evaluation: int = 0,
                         exclude_finished_jobs: bool = False, finished: set[str] = frozenset()) -> Decision:
    """Truncation selection: end a trial among the worst ``truncation_percentage`` % at its interval.

    At the trial's latest due interval ``m``: the pool is every trial that reached ``m`` (without
    finished trials when ``exclude_finished_jobs``), compared on their value *at* interval ``m``. With
    ``k`` trials in the pool, the worst ``floor(k * truncation_percentage / 100)`` are cut: the trial is
    terminated if at least ``k - cut`` trials are strictly better (ties with a kept trial are kept).
    "Better" is larger for maximize and smaller for minimize.

    Source: https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#truncation-selection-policy
    """
    own = histories.get(trial, ())
    m = comparison_interval(trial, histories, evaluation_interval, delay_evaluation)
    if not m:
        return KEEP
    pool = _peers(histories, m, exclude=(set(finished) - {trial}) if exclude_finished_jobs else set())
    k = len(pool)
    cut = math.floor(k * truncation_percentage / 100)
    value = own[m - 1]
    better = sum(1 for v in pool.values() if _better(v[m - 1], value, goal))
    if cut and better >= k - cut:
        return Decision(True, m, f"truncation_selection: value {value:.6g} at interval {m} is in the worst "
                                 f"{truncation_percentage}% ({cut} of {k} trials)")
    return Decision(False, m)


def asha(trial: str, histories: Histories, goal: str, *, min_resource: int = 1, reduction_factor: int = 3,
         delay_evaluation: int = 0, evaluation_interval: int = 0) -> Decision:
    """Asynchronous successive halving (not an Azure policy).

    Rungs sit at intervals ``min_resource * reduction_factor**k`` (k = 0, 1, ...; those below
    ``delay_evaluation`` are skipped). At the trial's latest rung ``r``, the ``k`` trials that reached ``r``
    are compared on their value at ``r``; the trial continues only if fewer than
    ``max(1, k // reduction_factor)`` trials are strictly better (the top ``1/reduction_factor``; the best
    always continues, so the first trial at a rung does). Better = larger (maximize) or smaller (minimize).

    Source: Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020),
    https://arxiv.org/abs/1810.05934
    """
    own = histories.get(trial, ())
    n = len(own)
    rung = 0
    r = min_resource
    while r <= n:
        if r >= (delay_evaluation or 0):
            rung = r
        r *= reduction_factor
    if not rung:
        return KEEP
    pool = _peers(histories, rung)
    value = own[rung - 1]
    keep = max(1, len(pool) // reduction_factor)
    better = sum(1 for v in pool.values() if _better(v[rung - 1], value, goal))
    if better >= keep:
        return Decision(True, rung, f"asha: value {value:.6g} at rung {rung} is not in the top {keep} of "
                                    f"{len(pool)} trial(s)")
    return Decision(False, rung)


def decide(policy, trial: str, histories: Histories, goal: str, finished: set[str] = frozenset()) -> Decision:
    """Apply a policy spec (:class:`prefect_ml.specs.sweep.BanditPolicy`, ...) to one trial.

    Args:
        policy: The ``early_termination`` spec, or None (never terminates).
        trial: Id of the trial to decide on.
        histories: Trial id -> primary-metric values in the order logged.
        goal: ``maximize`` or ``minimize``.
        finished: Ids of finished trials (truncation selection's ``exclude_finished_jobs``).
    """
    if policy is None:
        return KEEP
    common = {"evaluation_interval": policy.evaluation_interval, "delay_evaluation": policy.delay_evaluation}
    if policy.type == "bandit":
        return bandit(trial, histories, goal, slack_factor=policy.slack_factor, slack_amount=policy.slack_amount,
                      **common)
    if policy.type == "median_stopping":
        return median_stopping(trial, histories, goal, **common)
    if policy.type == "truncation_selection":
        return truncation_selection(trial, histories, goal, truncation_percentage=policy.truncation_percentage,
                                    exclude_finished_jobs=policy.exclude_finished_jobs, finished=finished, **common)
    if policy.type == "asha":
        return asha(trial, histories, goal, min_resource=policy.min_resource,
                    reduction_factor=policy.reduction_factor, **common)
    raise ValueError(f"unknown early-termination policy {policy.type!r}")
