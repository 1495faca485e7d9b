"""Early-termination policies on hand-computed metric tables (pure functions, no servers).

Rules: https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#early-termination
(see prefect_ml.sweep.policies for the minimize mirror and the interval conventions).
"""

from __future__ import annotations

import pytest

from prefect_ml.specs.sweep import (
    AsyncSuccessiveHalvingPolicy, BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy,
)
from prefect_ml.sweep import policies
from prefect_ml.sweep.policies import asha, bandit, decide, is_due, latest_due_interval, median_stopping, truncation_selection


@pytest.mark.parametrize("n,interval,delay,due", [
    (1, 1, 0, True), (4, 1, 5, False), (5, 1, 5, True), (6, 1, 5, True),  # Azure: "starting at interval 5"
    (3, 3, 0, True), (4, 3, 0, False), (6, 2, 5, True), (5, 2, 5, False), (1, 0, 0, True), (0, 1, 0, False),
])
def test_due_intervals(n, interval, delay, due):
    assert is_due(n, interval, delay) is due


def test_latest_due_interval():
    assert latest_due_interval(7, 3, 0) == 6
    assert latest_due_interval(2, 3, 0) == 0
    assert latest_due_interval(4, 1, 5) == 0
    assert latest_due_interval(9, 2, 5) == 8


# -- bandit: Azure's example: best 0.8, slack_factor 0.1 -> limit 0.8/1.1 = 0.7273; slack_amount 0.2 -> 0.6
TABLE_MAX = {"best": [0.5, 0.7, 0.8], "close": [0.4, 0.6, 0.74], "far": [0.3, 0.5, 0.72], "lag": [0.2, 0.59]}


def test_bandit_slack_factor_maximize():
    assert not bandit("close", TABLE_MAX, "maximize", slack_factor=0.1).terminate  # 0.74 >= 0.7273
    decision = bandit("far", TABLE_MAX, "maximize", slack_factor=0.1)  # 0.72 < 0.7273
    assert decision.terminate and decision.interval == 3 and "0.727273" in decision.reason
    assert not bandit("best", TABLE_MAX, "maximize", slack_factor=0.1).terminate


def test_bandit_slack_amount_maximize_compares_at_the_trials_own_interval():
    # "lag" reached interval 2 only: compared with bests over intervals 1..2: 0.7 -> limit 0.5; 0.59 kept
    assert not bandit("lag", TABLE_MAX, "maximize", slack_amount=0.2).terminate
    assert bandit("lag", TABLE_MAX, "maximize", slack_amount=0.05).terminate  # limit 0.65 > 0.59
    assert not bandit("far", TABLE_MAX, "maximize", slack_amount=0.2).terminate  # 0.72 >= 0.6


def test_bandit_minimize_mirrors():
    losses = {"best": [1.0, 0.5], "ok": [1.2, 0.54], "bad": [1.1, 0.56]}
    # slack_factor 0.1: limit 0.5 * 1.1 = 0.55
    assert not bandit("ok", losses, "minimize", slack_factor=0.1).terminate
    assert bandit("bad", losses, "minimize", slack_factor=0.1).terminate
    # slack_amount 0.05: limit 0.55 as well
    assert bandit("bad", losses, "minimize", slack_amount=0.05).terminate
    assert not bandit("ok", losses, "minimize", slack_amount=0.05).terminate


def test_bandit_delay_and_interval():
    table = {"a": [0.9, 0.9, 0.9, 0.9], "b": [0.1, 0.1, 0.1]}
    assert not bandit("b", table, "maximize", slack_factor=0.1, delay_evaluation=4).terminate  # b at interval 3 < 4
    assert bandit("b", table, "maximize", slack_factor=0.1, delay_evaluation=3).terminate
    assert bandit("b", table, "maximize", slack_factor=0.1, evaluation_interval=2).interval == 2


def test_bandit_first_batch_terminates_without_finished_trials():
    # two concurrent trials, nothing finished yet: the worse one is cut as soon as both reached interval 1
    assert bandit("slow", {"fast": [0.9], "slow": [0.3]}, "maximize", slack_factor=0.2).terminate
    assert not bandit("slow", {"fast": [], "slow": [0.3]}, "maximize", slack_factor=0.2).terminate


# -- median stopping: running averages of the others over 1..m, median, compared with the trial's best
def test_median_stopping_maximize():
    table = {"a": [0.6, 0.8, 1.0], "b": [0.2, 0.4, 0.6], "c": [0.5, 0.5, 0.5], "t": [0.3, 0.45, 0.45]}
    # others at m=3: averages a 0.8, b 0.4, c 0.5 -> median 0.5; t's best 0.45 < 0.5
    decision = median_stopping("t", table, "maximize")
    assert decision.terminate and "0.5" in decision.reason
    assert not median_stopping("c", table, "maximize").terminate  # others a 0.8, b 0.4, t 0.4 -> 0.4 <= 0.5


def test_median_stopping_minimize_and_delay():
    table = {"a": [1.0, 0.8], "b": [2.0, 1.0], "t": [1.6, 1.5]}
    # others at m=2: averages a 0.9, b 1.5 -> median 1.2; t's best (min) 1.5 > 1.2
    assert median_stopping("t", table, "minimize").terminate
    assert not median_stopping("t", table, "minimize", delay_evaluation=3).terminate
    assert not median_stopping("t", {"t": [5.0, 5.0]}, "minimize").terminate  # nobody to compare with


# -- truncation selection: worst floor(k * pct / 100) at interval m are cut
def test_truncation_selection_maximize():
    table = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.6], "e": [0.5]}
    # k=5, 20 % -> cut 1: only e
    assert truncation_selection("e", table, "maximize", truncation_percentage=20).terminate
    assert not truncation_selection("d", table, "maximize", truncation_percentage=20).terminate
    # 40 % -> cut 2: d and e
    assert truncation_selection("d", table, "maximize", truncation_percentage=40).terminate
    # 19 % of 5 -> cut 0
    assert not truncation_selection("e", table, "maximize", truncation_percentage=19).terminate


def test_truncation_selection_minimize_ties_and_finished():
    table = {"a": [0.1, 0.5], "b": [0.2, 0.5], "c": [0.3, 0.9], "d": [0.4, 0.9]}
    # at m=2, minimize, 25 % of 4 -> cut 1: c and d tie for worst, 2 trials better than each: 2 < 3 -> kept
    assert not truncation_selection("c", table, "minimize", truncation_percentage=25).terminate
    # 50 % -> cut 2: both cut (2 better >= 4 - 2)
    assert truncation_selection("c", table, "minimize", truncation_percentage=50).terminate
    # excluding finished a and b: pool {c, d} (tie), cut 1 -> nobody strictly better -> kept
    assert not truncation_selection("c", table, "minimize", truncation_percentage=50, exclude_finished_jobs=True,
                                    finished={"a", "b"}).terminate
    # the trial is compared at interval m on the value at m, not its best
    assert truncation_selection("d", {"x": [0.5, 0.5], "d": [0.1, 0.9]}, "minimize",
                                truncation_percentage=50).terminate


# -- ASHA: rungs at min_resource * eta**k, keep the top max(1, k // eta)
def test_asha_rungs_and_first_trial():
    assert not asha("a", {"a": [0.5]}, "maximize", min_resource=1, reduction_factor=2).terminate  # first at rung
    table = {"a": [0.9, 0.9], "b": [0.5, 0.6]}
    decision = asha("b", table, "maximize", min_resource=1, reduction_factor=2)
    assert decision.terminate and decision.interval == 2  # rung 2: keep 1 of 2, a is better
    table = {"a": [0.9, 0.9, 0.9, 0.9], "b": [0.5, 0.6, 0.7, 0.95], "c": [0.1, 0.2, 0.3]}
    # c: latest rung 2 (rungs 1, 2, 4): values at 2: a 0.9, b 0.6, c 0.2 -> keep 1 -> cut
    assert asha("c", table, "maximize", min_resource=1, reduction_factor=2).terminate
    # b at rung 4: a 0.9, b 0.95 -> b best -> kept
    assert not asha("b", table, "maximize", min_resource=1, reduction_factor=2).terminate
    # minimize mirrors
    assert not asha("c", table, "minimize", min_resource=1, reduction_factor=2).terminate
    # below min_resource nothing happens
    assert not asha("c", table, "maximize", min_resource=4, reduction_factor=2).terminate


def test_decide_dispatches_on_the_policy_spec():
    table = {"best": [0.8], "far": [0.5]}
    assert decide(BanditPolicy(slack_factor=0.1), "far", table, "maximize").terminate
    assert decide(MedianStoppingPolicy(), "far", table, "maximize").terminate
    assert decide(TruncationSelectionPolicy(truncation_percentage=50), "far", table, "maximize").terminate
    assert decide(AsyncSuccessiveHalvingPolicy(reduction_factor=2), "far", table, "maximize").terminate
    assert not decide(None, "far", table, "maximize").terminate
    assert policies.KEEP.terminate is False


def test_a_trial_ahead_of_its_peers_is_judged_where_they_are():
    # "fast" reported 5 intervals, "slow" only 2: "fast" is compared at interval 2 (its best over 1..2)
    table = {"fast": [0.1, 0.2, 0.9, 0.9, 0.9], "slow": [0.6, 0.7]}
    assert policies.comparison_interval("fast", table, 1, 0) == 2
    decision = bandit("fast", table, "maximize", slack_factor=0.1)
    assert decision.terminate and decision.interval == 2  # 0.2 < 0.7 / 1.1
    assert median_stopping("fast", table, "maximize").terminate  # 0.2 < median(avg(0.6, 0.7) = 0.65)
    assert policies.comparison_interval("fast", {"fast": [1, 2, 3]}, 1, 0) == 3  # nobody to compare with
    # with delay 3 no peer reached a due interval: judged at its own latest (no peers there: kept)
    assert not bandit("fast", table, "maximize", slack_factor=0.1, delay_evaluation=3).terminate
