"""Early termination on real data: the digits MLP sweep with and without its policy, same seed.

Runs ``examples/sweeps/digits-sgd/sweep.yml`` twice on the local compute: with an early-termination
policy (default: truncation selection, 50 %, from epoch 3, as in the example) and without one. Prints the total trial-epochs (primary-metric
reports summed over trials) and the best accuracy of each. Targets: trial-epochs cut by >= 30 %, best
accuracy within 1 point of the sweep without termination.

Usage::

    python benchmarks/sweep_early_termination.py [--trials 16] [--policy median_stopping|bandit|truncation_selection|asha]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import isolated_api  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sweeps" / "digits-sgd" / "sweep.yml"

POLICIES = {
    "median_stopping": {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 3},
    "bandit": {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 1, "delay_evaluation": 3},
    "truncation_selection": {"type": "truncation_selection", "truncation_percentage": 50, "delay_evaluation": 3},
    "asha": {"type": "asha", "min_resource": 2, "reduction_factor": 3},
}


def run(policy: dict | None, trials: int, label: str) -> dict:
    from prefect_ml import MLClient
    from prefect_ml.specs import load_job

    overrides = [f"limits.max_total_trials={trials}"]
    spec = load_job(EXAMPLE, overrides=overrides)
    spec = spec.model_copy(update={"early_termination": None})
    if policy:
        from prefect_ml.specs.sweep import SweepJob

        spec = SweepJob.model_validate({**spec.model_dump(mode="json", by_alias=True), "early_termination": policy})
    started = time.perf_counter()
    job = MLClient().jobs.create_or_update(spec, name=f"digits_{label}_{int(time.time())}")
    wall = time.perf_counter() - started
    assert job.status == "Completed", job.error
    from prefect_ml.specs.sweep import SweepJob  # noqa: F811
    from prefect_ml.sweep.engine import trial_records

    records = trial_records(spec, job.name)
    return {"wall": wall, "epochs": sum(r["intervals"] for r in records),
            "terminated": sum(r["terminated_early"] for r in records),
            "best": job.details["best_trial"]["metric"], "best_trial": job.details["best_trial"]}


def previous(name: str) -> dict:
    from prefect_ml.specs import load_job
    from prefect_ml.sweep.engine import best_of, trial_records

    spec = load_job(EXAMPLE)
    records = trial_records(spec, name)
    return {"wall": float("nan"), "epochs": sum(r["intervals"] for r in records), "terminated": 0,
            "best": best_of(records, spec.goal)["metric"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--policy", default="truncation_selection", choices=sorted(POLICIES))
    parser.add_argument("--use-current-api", action="store_true")
    parser.add_argument("--baseline-job", help="Reuse this earlier no-termination sweep (with --use-current-api).")
    args = parser.parse_args()
    with isolated_api(args.use_current_api):
        base = previous(args.baseline_job) if args.baseline_job else run(None, args.trials, "none")
        cut = run(POLICIES[args.policy], args.trials, args.policy)
    saved = 1 - cut["epochs"] / base["epochs"]
    gap = (base["best"] - cut["best"]) * 100
    print(f"without termination : {base['epochs']} trial-epochs, best accuracy {base['best']:.4f}, "
          f"wall {base['wall']:.0f} s")
    print(f"with {args.policy:15s}: {cut['epochs']} trial-epochs, best accuracy {cut['best']:.4f}, "
          f"wall {cut['wall']:.0f} s, {cut['terminated']} trials terminated early")
    print(f"trial-epochs saved: {saved:.0%} (target >= 30 %); best accuracy gap: {gap:.2f} points (target <= 1)")


if __name__ == "__main__":
    main()
