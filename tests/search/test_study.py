"""The Optuna side: seeds as user attributes, old studies refused, and the private attributes of
Ray's OptunaSearch that the pruning-aware searcher relies on."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.plan import make_plan
from search.settings import SearchSettings
from search.study import SpaceSampler, enqueue, open_study, settle_abandoned, study_storage


def test_enqueued_grid_trials_carry_the_seed_as_a_user_attribute(tmp_path: Path) -> None:
    study = open_study(tmp_path, "shortcuts", "accuracy", "smoke")
    enqueue(study, make_plan(SearchSettings(space="shortcuts", seeds=2)))
    sampler = SpaceSampler("shortcuts")
    configs = []
    for _ in range(3):
        trial = study.ask()
        constants = sampler(trial)
        configs.append({**trial.params, **constants})  # as OptunaSearch merges them
        assert "seed" not in trial.params and set(trial.params) == {"depth", "shortcut"}
    assert configs == [
        {"model": "resnet20", "depth": 20, "shortcut": "A", "seed": 0},
        {"model": "resnet20", "depth": 20, "shortcut": "A", "seed": 1},
        {"model": "resnet20", "depth": 20, "shortcut": "B", "seed": 0},
    ]


def test_baseline_trials_train_the_baseline_model(tmp_path: Path) -> None:
    study = open_study(tmp_path, "shortcuts", "accuracy", "smoke")
    plan = make_plan(SearchSettings(space="shortcuts", trials=1))
    plan.trials = plan.trials[1:]  # the baseline only
    enqueue(study, plan)
    trial = study.ask()
    assert SpaceSampler("shortcuts")(trial) == {"model": "cifar_vgg16_bn", "seed": 0}
    assert trial.params == {}


def test_abandoned_trials_are_requeued_with_their_seed(tmp_path: Path) -> None:
    study = open_study(tmp_path, "shortcuts", "accuracy", "smoke")
    enqueue(study, make_plan(SearchSettings(space="shortcuts", seeds=2, trials=2, baselines=False)))
    first = study.ask()
    first.set_user_attr("ray_trial_id", "lost0001")
    assert settle_abandoned(study, known_ray_trials=set(), rows={}, objective="accuracy") == ["lost0001"]
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    again = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(t.user_attrs["seed"] for t in again) == [0, 1]


def test_a_trial_recorded_before_optuna_heard_is_told_its_row(tmp_path: Path) -> None:
    # The driver died after results.csv got the row and before Optuna was told: the row wins.
    study = open_study(tmp_path, "shortcuts", "accuracy", "smoke")
    enqueue(study, make_plan(SearchSettings(space="shortcuts", trials=2, baselines=False)))
    done, stopped = study.ask(), study.ask()
    done.set_user_attr("ray_trial_id", "0000done")
    stopped.set_user_attr("ray_trial_id", "000000e1")
    rows = {"0000done": {"status": "completed", "val_accuracy": 0.5, "macs": 4e7}, "000000e1": {"status": "pruned", "val_accuracy": None, "macs": 4e7}}
    assert settle_abandoned(study, known_ray_trials=set(), rows=rows, objective="accuracy") == []
    trials = study.get_trials(deepcopy=False)
    assert [(t.state, t.value) for t in trials] == [(optuna.trial.TrialState.COMPLETE, 0.5), (optuna.trial.TrialState.PRUNED, None)]
    assert not [t for t in trials if t.state == optuna.trial.TrialState.WAITING]  # nothing runs twice


def test_a_study_that_sampled_the_seed_is_refused(tmp_path: Path) -> None:
    old = open_study(tmp_path, "shortcuts", "accuracy", "smoke")
    trial = old.ask()
    trial.suggest_categorical("seed", [0, 1])  # what versions before seeds became user attributes did
    old.tell(trial, 0.5)
    with pytest.raises(ValueError, match="older ResBench"):
        open_study(tmp_path, "shortcuts", "accuracy", "smoke")


def test_optuna_search_has_the_private_attributes_the_searcher_reads(tmp_path: Path) -> None:
    from search.launch import PruningAwareOptunaSearch

    searcher = PruningAwareOptunaSearch(space=SpaceSampler("shortcuts"), metric="val_accuracy", mode="max", study_name="shortcuts", storage=optuna.storages.InMemoryStorage())
    searcher.suggest("trial0001")
    for attribute in ("_ot_trials", "_ot_study", "_completed_trials"):
        assert hasattr(searcher, attribute), f"ray's OptunaSearch no longer has {attribute}"
    assert searcher._ot_trials["trial0001"].user_attrs["ray_trial_id"] == "trial0001"
    searcher.on_trial_complete("trial0001", {"status": "pruned", "val_accuracy": 0.1})
    assert searcher._ot_study.trials[0].state == optuna.trial.TrialState.PRUNED


@pytest.mark.parametrize(("objective", "names"), [("accuracy", ["val_accuracy"]), ("pareto", ["val_accuracy", "macs"])])
def test_the_studys_objectives_are_named(tmp_path: Path, objective: str, names: list[str]) -> None:
    study = open_study(tmp_path, "shortcuts", objective, "smoke")
    assert study.metric_names == names
    reopened = optuna.load_study(study_name="shortcuts", storage=study_storage(tmp_path))  # as optuna-dashboard reads it
    assert reopened.metric_names == names
