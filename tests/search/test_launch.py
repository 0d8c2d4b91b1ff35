"""The Ray launch (search.launch, search.trial) on a real local Ray instance and a real Optuna
journal storage: TPE with ASHA, users' callbacks and loggers, plugins and a timm baseline inside
Ray workers, trials killed, failed by a full disk or left unlaunched by a time budget.

Everything runs on loopback with synthetic data and the smoke budget; concurrency and faults are
proven with deterministic switches (a file barrier, a process exit after an epoch), not timing.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
import pytest
import torch
from ray import tune

import search
import zoo
from leaderboards.schema import architecture, read_table
from search.run import run_search
from search.train import main as train_main
from tests.search.conftest import fast_recipe, load_study

pytestmark = pytest.mark.slow  # real Ray instances
DETERMINISTIC = ["epoch", "train_loss", "train_error", "val_accuracy", "lr"]


class EpochRecorder(tune.Callback):
    """A user's Ray Tune callback, passed through run_search(callbacks=...)."""

    def __init__(self) -> None:
        self.epochs: dict[str, list[int]] = {}

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        if result.get("status") == "running":
            self.epochs.setdefault(trial.trial_id, []).append(int(result["epoch"]))


def test_tpe_records_asha_stops_as_pruned_and_is_seeded(ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A tuning space of depth-8 ResNets (the bottleneck space's widest nets train at a few
    # images/s on one thread); what is tested is the sampled design: ASHA stops, PRUNED states, seeding.
    @search.register_space("test_tpe_small", sampler="tpe")
    def small(trial: Any) -> dict[str, Any]:
        """Depth-8 ResNet shortcuts and initialisations, sampled."""
        trial.suggest_categorical("shortcut", ["A", "B", "C", "none"])
        trial.suggest_categorical("zero_init_residual", [False, True])
        return {"model": "resnet20", "depth": 8}

    common = dict(data="synthetic", budget="smoke", baselines=False, recipe=fast_recipe("epochs=4"))
    recorder = EpochRecorder()
    results = run_search("test_tpe_small", trials=6, out=str(tmp_path / "a"), callbacks=[recorder], log=["tensorboard", "csv", "mlflow"], **common)
    # --log: Ray's TensorBoard and CSV files per trial, and an MLflow file store read back with MLflow's own API.
    for trial_id in results["trial_id"]:
        assert list((tmp_path / "a" / "ray" / trial_id).glob("events.out.tfevents.*")) and (tmp_path / "a" / "ray" / trial_id / "progress.csv").exists()
    mlflow.set_tracking_uri((tmp_path / "a" / "mlruns").as_uri())
    runs = mlflow.search_runs(experiment_names=["test_tpe_small"])
    assert len(runs) == 6 and runs["metrics.val_accuracy"].notna().all()
    assert sorted(runs["params.shortcut"].tolist()) == sorted(results["config_shortcut"].tolist())
    # The user's callback saw every epoch of every trial; the driver printed progress with an ETA.
    assert {trial_id: epochs[-1] for trial_id, epochs in recorder.epochs.items()} == dict(zip(results["trial_id"], results["epochs"]))
    assert re.search(r"\w+ epoch [1-4]/4 val [0-9.]+ \(\d+ s/epoch\); search ETA ~\d+ min", capsys.readouterr().out)
    study = load_study(tmp_path / "a", "test_tpe_small")
    states = {t.user_attrs["ray_trial_id"]: t.state for t in study.trials}
    assert len(states) == len(results) == 6
    assert all("seed" not in t.params and t.user_attrs["seed"] == 0 for t in study.trials)
    expected = {"completed": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}
    for _, row in results.iterrows():
        assert states[row["trial_id"]] == expected[row["status"]]
    pruned = results[results["status"] == "pruned"]
    assert len(pruned) >= 1, "ASHA (reduction factor 3) stops trials below a rung's cut"
    assert (pruned["epochs"] < 4).all() and (results.loc[results["status"] == "completed", "epochs"] == 4).all()
    # The sampler's seed alone decides what it asks: a cheaper recipe replays the same choices.
    again = run_search("test_tpe_small", trials=2, out=str(tmp_path / "b"), **{**common, "recipe": fast_recipe("epochs=1")})
    first = [t.params for t in sorted(study.trials, key=lambda t: t.number)[:2]]
    second = [t.params for t in sorted(load_study(tmp_path / "b", "test_tpe_small").trials, key=lambda t: t.number)]
    assert first == second and len(again) == 2


def test_plugin_block_and_space_train_inside_ray_workers_on_a_relative_data_folder(ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.search.helpers import write_image_folder

    plugin = tmp_path / "plugins" / "resbench_test_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(
        "import torch.nn as nn\nimport search\nimport zoo\n\n"
        "@zoo.register('plugin_basic')\n"
        "class PluginBasic(nn.Module):\n"
        "    expansion = 1\n    post_activation = True\n"
        "    def __init__(self, in_channels, channels, stride=1, **options):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),\n"
        "                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))\n"
        "    def forward(self, x):\n        return self.body(x)\n\n"
        "@search.register_space('plugin_space')\n"
        "def plugin_space(trial):\n"
        "    '''The plugin's block with two shortcuts.'''\n"
        "    trial.suggest_categorical('shortcut', ['A', 'B'])\n"
        "    return {'model': 'resnet20', 'block': 'plugin_basic'}\n"
    )
    monkeypatch.syspath_prepend(str(plugin.parent))  # the driver imports it; workers load it from its file
    write_image_folder(tmp_path / "data", "train", per_class=40)
    monkeypatch.chdir(tmp_path)  # the user's form: a data path relative to where they run the search; trials change directory
    small = fast_recipe("epochs=1", "val_size=12", "test_size=12")
    # Beside it, one of timm's networks as the baseline: trained with the space's recipe at the data's 32 px, counted the zoo's way.
    results = run_search("plugin_space", data="data", budget="smoke", recipe=small, plugins=["resbench_test_plugin"], baselines=["timm:resnet10t"], out="exp")
    assert list(results["status"]) == ["completed"] * 3
    space, baseline = results[results["model"] != "timm:resnet10t"], results[results["model"] == "timm:resnet10t"].iloc[0]
    assert set(space["block"]) == {"plugin_basic"} and len(space) == 2
    assert all(command.startswith("python -m search.train --model resnet20 --plugins resbench_test_plugin ") for command in space["command"])  # each replays with its block
    counted = zoo.complexity("timm:resnet10t", input_size=32, num_classes=3)
    assert (baseline["params"], baseline["macs"], baseline["image_size"]) == (counted.params, counted.macs, 32)
    assert " --family cifar " in baseline["command"] and architecture(baseline).label == "resnet10t (timm)"
    assert json.loads((tmp_path / "exp" / "search.json").read_text())["command"].count("--data data ") == 1


def test_trial_killed_after_an_epoch_resumes_from_its_checkpoint(ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder) -> None:
    monkeypatch.setenv("RESBENCH_FAULT", "exit_after_epoch:1")  # the first attempt's process dies
    # With deterministic kernels, which every trial of the search uses (the CPU's are bitwise either way).
    disturbed = run_search("shortcuts", data="synthetic", budget="smoke", recipe=fast_recipe("epochs=3"), trials=1, baselines=False, deterministic=True, out=str(tmp_path / "fault"))
    assert disturbed.loc[0, "status"] == "completed" and " --deterministic " in disturbed.loc[0, "command"]
    # Optuna holds every epoch's validation accuracy at its epoch, the retried attempt's included:
    # Ray's iteration count restarts with the retried process, the epochs do not.
    epochs = pd.read_csv(tmp_path / "fault" / "trials" / disturbed.loc[0, "trial_id"] / "metrics.csv")
    (study_trial,) = load_study(tmp_path / "fault", "shortcuts").trials
    assert study_trial.intermediate_values == pytest.approx(dict(zip(epochs["epoch"], epochs["val_accuracy"])))
    assert not [warning for warning in recwarn if "is already reported" in str(warning.message)]  # no epoch dropped as a repeat
    # The same trial undisturbed, here (one thread, as a trial of 1 CPU): bit for bit the same.
    monkeypatch.delenv("RESBENCH_FAULT")
    command = shlex.split(disturbed.loc[0, "command"])[3:]  # past "python -m search.train"
    assert train_main([*command[: command.index("--out")], "--out", str(tmp_path / "calm")]) == 0
    calm = pd.read_csv(tmp_path / "calm" / "metrics.csv")[DETERMINISTIC]
    fault = pd.read_csv(tmp_path / "fault" / "trials" / disturbed.loc[0, "trial_id"] / "metrics.csv")[DETERMINISTIC]
    pd.testing.assert_frame_equal(fault, calm, check_exact=True)
    calm_summary = json.loads((tmp_path / "calm" / "summary.json").read_text())
    assert disturbed.loc[0, "test_accuracy"] == calm_summary["test_accuracy"] and calm_summary["deterministic"]


def test_a_trial_failed_by_a_full_disk_finishes_on_resume_and_the_study_agrees(ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No retries: each would fail the same way here (they are tested with the killed trial).
    common = dict(data="synthetic", budget="smoke", recipe=fast_recipe("epochs=2"), trials=1, baselines=False, retries=0, out=str(tmp_path / "exp"))
    monkeypatch.setenv("RESBENCH_FAULT", "disk_full_from_epoch:2")  # writing epoch 2 fails
    failed = run_search("shortcuts", **common)
    assert list(failed["status"]) == ["failed"] and "No space left on device" in failed.loc[0, "error"]
    trial = tmp_path / "exp" / "trials" / failed.loc[0, "trial_id"]
    assert torch.load(trial / "checkpoint" / "checkpoint.pt", weights_only=True)["epoch"] == 1  # intact
    monkeypatch.delenv("RESBENCH_FAULT")  # space freed
    resumed = run_search("shortcuts", resume=True, **common)
    assert list(resumed["status"]) == ["completed"] and list(resumed["trial_id"]) == list(failed["trial_id"])
    assert resumed.loc[0, "epochs"] == 2
    # Optuna never changes a finished trial: the outcome is a new COMPLETE trial for the same Ray
    # trial, and the latest one for each Ray trial is what results.csv says.
    mine = sorted((t for t in load_study(tmp_path / "exp", "shortcuts").trials if t.user_attrs.get("ray_trial_id") == failed.loc[0, "trial_id"]), key=lambda t: t.number)
    assert [t.state for t in mine] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert mine[-1].params == mine[0].params and mine[-1].value == resumed.loc[0, "val_accuracy"]


def test_a_time_budget_stops_launching_and_resume_launches_the_rest(ray_session: None, tmp_path: Path) -> None:
    common = dict(data="synthetic", budget="smoke", recipe=fast_recipe("epochs=1"), trials=2, baselines=False, out=str(tmp_path / "exp"))
    assert run_search("shortcuts", time_budget=0.001, **common).empty  # nothing launched...
    study = load_study(tmp_path / "exp", "shortcuts")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.WAITING] * 2  # ...nothing half-asked
    assert read_table(tmp_path / "exp" / "results.csv").empty
    results = run_search("shortcuts", resume=True, **common)
    assert sorted(zip(results["depth"], results["shortcut"])) == [(20, "A"), (20, "B")]
    done = load_study(tmp_path / "exp", "shortcuts").trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in done) and len(done) == 2
    assert {t.user_attrs["ray_trial_id"] for t in done} == set(results["trial_id"])
