"""search.run, the main job, on a real local Ray instance and a real Optuna journal storage: the
shortcuts grid end to end, the planned (Ray-free) form of the same trials, the driver killed and
stopped, and bad input. (The Ray launch's samplers, callbacks and trial faults: test_launch.py.)

Everything runs on loopback with synthetic data and the smoke budget; concurrency and faults are
proven with deterministic switches (a file barrier, a process exit after an epoch), not timing.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from leaderboards.schema import read_table
from search.lease import LEASE_FILE, read_holder
from search.measure import process_tree
from search.planned import PlannedExperiment, collect, run_planned
from search.provenance import resolve_search_precision
from search.run import main
from search.stopping import CHECKPOINTED_FILE
from search.train import main as train_main
from tests.search.conftest import FAST, load_study, ray_environment, short_temp_dir
from tests.search.helpers import listening_addresses

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real Ray instances


def test_shortcuts_smoke_grid_runs_every_configuration_once_per_seed(shortcuts_run: Path) -> None:
    results = read_table(shortcuts_run / "results.csv")
    assert (results["status"] == "completed").all(), results[["trial_id", "status", "error"]]
    variants = results[results["model"] != "cifar_vgg16_bn"]
    grid = sorted((20, s, seed) for s in ("A", "B") for seed in (0, 1))
    assert sorted(zip(variants["depth"], variants["shortcut"], variants["seed"])) == grid
    baseline = results[results["model"] == "cifar_vgg16_bn"]
    assert sorted(baseline["seed"]) == [0, 1]
    assert (shortcuts_run / "shortcuts.md").exists()
    for column in ("trial_id", "node", "device", "params", "macs", "inference_images_per_second", "command"):
        assert results[column].notna().all(), column
    assert (results["world_size"] == 1).all()  # one process per trial
    # Every trial's per-epoch metrics, in one table beside the results (the pages' curves).
    curves = read_table(shortcuts_run / "curves.csv")
    assert sorted(curves["trial_id"]) == sorted(results["trial_id"]) and set(curves["epoch"]) == {1}
    assert {"train_error", "val_accuracy"} <= set(curves.columns)
    # The driver decided the precision once, recorded it, and every trial trained in it.
    precision = resolve_search_precision("auto", trials_on_gpu=False)
    assert json.loads((shortcuts_run / "search.json").read_text())["precision"] == precision
    assert (results["precision"] == precision).all()
    assert all(json.loads(r)["precision"] == precision for r in results["recipe"])


def test_two_trials_run_at_once(shortcuts_run: Path) -> None:
    arrived = list((shortcuts_run.parent / "barrier").iterdir())
    assert len(arrived) == 6  # every trial passed the barrier, which opens only once two wait at it


def test_study_holds_one_trial_per_results_row(shortcuts_run: Path) -> None:
    results = read_table(shortcuts_run / "results.csv")
    study = load_study(shortcuts_run, "shortcuts")
    assert len(study.trials) == len(results)
    assert {t.user_attrs["ray_trial_id"] for t in study.trials} == set(results["trial_id"])
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # seeds are user attributes, so the study's parameters are the architecture choices only
    assert all("seed" not in t.params for t in study.trials)
    by_id = {t.user_attrs["ray_trial_id"]: t.user_attrs["seed"] for t in study.trials}
    assert all(by_id[row["trial_id"]] == row["seed"] for _, row in results.iterrows())


def test_every_row_replays_with_search_train(shortcuts_run: Path, tmp_path: Path) -> None:
    row = read_table(shortcuts_run / "results.csv").iloc[0]
    command = row["command"].replace(str(shortcuts_run / "trials" / row["trial_id"]), str(tmp_path / "replay"))
    assert shlex.split(command)[:3] == ["python", "-m", "search.train"]
    assert train_main(shlex.split(command)[3:]) == 0  # the command's arguments, to search.train's own main
    replayed = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert replayed["val_accuracy"] == pytest.approx(row["val_accuracy"])


# What differs between two runs of the same trial on one machine, or between launchers.
NOT_COMPARED = ["trial_id", "node", "gpu_ids", "command", "wall_seconds", "images_per_second", "inference_images_per_second"]


def plan_grid(out: Path, *flags: str) -> PlannedExperiment:
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--recipe", *FAST, "epochs=1", "--out", str(out), "--plan", *flags]
    assert main(args) == 0
    return PlannedExperiment.load(out)


def grid_key(model: str, shortcut: object, seed: object) -> tuple[str, str, int]:
    return (model, "-" if pd.isna(shortcut) else str(shortcut), int(seed))


def hand_over_ray_trials(experiment: PlannedExperiment, ray_out: Path) -> None:
    """Give each planned trial what the Ray trial of the same configuration and seed wrote: the
    directory its command would have produced (same identity, same computation)."""
    ray_rows = read_table(ray_out / "results.csv")
    by_key = {grid_key(r["model"], r.get("config_shortcut"), r["seed"]): r["trial_id"] for _, r in ray_rows.iterrows()}
    for trial in experiment.trials:
        ray_id = by_key[grid_key(trial.config["model"], trial.config.get("shortcut"), trial.config["seed"])]
        shutil.copytree(ray_out / "trials" / ray_id, trial.out(experiment.root))


def test_collecting_a_plan_gives_the_rows_and_study_of_the_ray_search_of_the_same_trials(shortcuts_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = plan_grid(tmp_path / "planned", "--seeds", "2", "--trials", "4")  # the Ray fixture's search
    commands = capsys.readouterr().out.splitlines()
    assert commands == [trial.command for trial in experiment.trials] and len(commands) == 6
    assert all(c.startswith("python -m search.train ") and " --threads 1 " in c and " --out /" not in c for c in commands)
    hand_over_ray_trials(experiment, shortcuts_run)
    planned = collect(experiment.out)
    ray = read_table(shortcuts_run / "results.csv")
    assert sorted(planned.columns) == sorted(ray.columns)
    order = lambda frame: frame.assign(key=[grid_key(*k) for k in zip(frame["model"], frame.get("config_shortcut"), frame["seed"])]).sort_values("key").drop(columns=[*NOT_COMPARED, "key"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(order(read_table(experiment.out / "results.csv")), order(ray), check_dtype=False)
    planned_study, ray_study = load_study(experiment.out, "shortcuts"), load_study(shortcuts_run, "shortcuts")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in planned_study.trials)
    signature = lambda study: sorted((sorted(t.params.items()), t.user_attrs["seed"], t.user_attrs.get("baseline", "")) for t in study.trials)  # noqa: E731
    assert signature(planned_study) == signature(ray_study)
    collect(experiment.out)  # a second collect adds nothing to the study
    assert len(load_study(experiment.out, "shortcuts").trials) == 6
    said: list[str] = []
    assert run_planned(experiment.out, jobs=2, say=said.append) == 0  # every trial finished: none runs again
    assert len(said) == 1 and said[0].startswith("planned: 6 of 6 planned trials finished; running 0,")


def run_search_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_a_driver_stopped_before_ray_starts_ends_interrupted_at_once_and_writes_nothing(tmp_path: Path) -> None:
    """SIGTERM while the driver loads its data (held there by a fault): it says that no trial has
    started, does not start Ray only to stop it, and exits 75 like any stopped search."""
    out = tmp_path / "exp"
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--no-baselines", "--out", str(out)]
    held = {**os.environ, **ray_environment(short_temp_dir()), "RESBENCH_FAULT": "stall_driver_before_ray:120"}
    with subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=REPO, env=held, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as driver:
        assert driver.stdout is not None and driver.stderr is not None
        for line in driver.stdout:
            if line.startswith("held before Ray starts"):
                driver.send_signal(signal.SIGTERM)
                break
        began = time.monotonic()
        stdout, stderr = driver.stdout.read(), driver.stderr.read()
        assert driver.wait(timeout=60) == 75, stderr[-2000:]
    assert time.monotonic() - began < 10  # not after a Ray start and stop
    assert stdout.splitlines() == ["SIGTERM: no trial has started; stopping once the data has loaded (a second signal stops at once)"]
    assert stderr.splitlines() == ["interrupted: 0 trial(s) finished and recorded, 0 stopped with a checkpoint; run the same command to continue"]
    assert not out.exists()


def test_a_killed_then_stopped_driver_resumes_with_every_trial_once_and_listens_on_loopback(ray_session: None, tmp_path: Path) -> None:
    """Two endings of a driver, resumed each time: a kill, then SIGTERM while trials are
    mid-epoch. The second driver is started as from a plain shell (no Ray loopback variable) and
    its sockets are read while its trials wait: every one listens on 127.0.0.1."""
    out = tmp_path / "exp"
    env = ray_environment(short_temp_dir())
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--no-baselines", "--trials", "3", "--out", str(out), "--recipe", *FAST, "epochs=1"]
    # 1. The driver dies (no goodbye) once a trial has finished.
    killed = run_search_cli(args, {**env, "RESBENCH_FAULT": "exit_driver_after_trials:1"})
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert len(read_table(out / "results.csv")) == 1
    # 2. Resumed from a plain shell, it is sent SIGTERM while a trial is mid-epoch (trials hold at
    # step 1 until asked to stop): it launches nothing more, running trials checkpoint, and it
    # exits "interrupted".
    plain_shell = {key: value for key, value in {**os.environ, **env}.items() if key != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    resumed = subprocess.Popen([sys.executable, "-m", "search.run", *args, "--resume"], cwd=REPO, env={**plain_shell, "RESBENCH_FAULT": "stall_at_step:1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    began = time.time()

    def stalled(trial: Path) -> bool:
        """Inside search.train under this driver, from scratch: held at step 1 until stopped. (A
        trial the kill caught after its last checkpoint would finish at once when restored.)"""
        holder = read_holder(trial / LEASE_FILE)
        return holder is not None and holder.started > began and not (trial / "checkpoint").exists() and not (trial / "summary.json").exists()

    try:
        deadline = time.monotonic() + 180
        while not any(stalled(trial) for trial in (out / "trials").glob("*")):
            assert resumed.poll() is None, resumed.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no trial started training"
            time.sleep(0.2)
        addresses = listening_addresses(process_tree(resumed.pid))
        resumed.send_signal(signal.SIGTERM)
        stdout, stderr = resumed.communicate(timeout=180)
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert addresses, "found no listening socket of the Ray instance"
    assert addresses == {"127.0.0.1"}, f"the local Ray instance listens on {sorted(addresses)}"
    assert resumed.returncode == 75, stderr[-3000:]
    stopped = [path.parent for path in (out / "trials").glob(f"*/{CHECKPOINTED_FILE}")]
    recorded = read_table(out / "results.csv")
    assert f"interrupted: {len(recorded)} trial(s) finished and recorded, {len(stopped)} stopped with a checkpoint" in stderr
    assert stopped and not set(recorded["trial_id"]) & {path.name for path in stopped}
    for trial in stopped:
        state = torch.load(trial / "checkpoint" / "checkpoint.pt", weights_only=True)
        assert state["in_epoch"]["epoch"] == 1 and state["epoch"] == 0  # mid-epoch, where it stood
    # 3. Resumed again (in this process, on the suite's Ray instance): the stopped trials finish
    # from their checkpoints, nothing runs twice.
    assert main([*args, "--resume"]) == 0
    results = read_table(out / "results.csv")
    assert len(results) == 3 and results["trial_id"].is_unique and (results["status"] == "completed").all()
    assert set(results["trial_id"]) >= {path.name for path in stopped}
    assert sorted(zip(results["depth"], results["shortcut"])) == [(20, "A"), (20, "B"), (20, "C")]
    study = load_study(out, "shortcuts")
    ranked = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.user_attrs["ray_trial_id"] for t in ranked} == set(results["trial_id"]) and len(ranked) == 3
    abandoned = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.user_attrs.get("ray_trial_id") not in set(results["trial_id"]) for t in abandoned)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nope"], "unknown space 'nope'; valid: blocks, bottleneck, depth,"),
        (["--space", "shortcuts", "--plugins", "no_such_module_xyz"], "cannot import plugin module 'no_such_module_xyz'"),
        (["--space", "shortcuts", "--trials", "-3"], "--trials must be a positive number"),
        (["--space", "shortcuts", "--seeds", "0"], "--seeds must be a positive number"),
        (["--space", "shortcuts", "--retries", "-1"], "--retries must be 0 or more"),
        (["--space", "shortcuts", "--data-seed", "-1"], "--data-seed must be 0 or more, got -1"),  # every trial would fail
        (["--space", "shortcuts", "--recipe", "val_size=1800"], "val_size 1800 leaves fewer than half of the 4000 training images"),
        (["--space", "shortcuts", "--max-gmacs", "nan"], "--max-gmacs must be a positive number"),
        (["--space", "shortcuts", "--recipe", "epohcs=2"], "unknown recipe field 'epohcs'"),
        (["--space", "shortcuts", "--recipe", "epochs"], "--recipe expects KEY=VALUE"),
        (["--space", "shortcuts", "--budget", "huge"], "valid: smoke, quick, paper"),
        (["--space", "shortcuts", "--sampler", "annealing"], "invalid choice"),
        (["--space", "shortcuts", "--resume"], "--resume: no experiment"),
        (["--space", "shortcuts", "--data", "/no/such/dir"], "neither a data set name"),
        (["--space", "shortcuts", "--compile", "fast"], "unknown compile mode 'fast'; valid: off, default,"),
        (["--space", "shortcuts", "--decode", "gpu"], "unknown --decode 'gpu'; valid: workers, device"),
        (["--space", "shortcuts", "--log", "csv,wandb"], "unknown --log 'wandb'; valid: tensorboard, csv, mlflow"),
        (["--space", "bottleneck", "--plan"], "--plan needs a grid design; bottleneck is sampled"),
        (["--space", "shortcuts", "--recipe", "val_size=0"], "recipe val_size 0 keeps no validation split, and a Ray search samples and prunes on validation accuracy; valid: val_size 1 or more, or a planned grid"),
        (["--space", "shortcuts", "--workers-per-trial", "0"], "--workers-per-trial must be a whole number of 1 or more, got 0"),
        (["--space", "shortcuts", "--gpus-per-trial", "1.5"], "--gpus-per-trial 1.5: above 1, a trial's GPUs are its workers' (one each), so a whole number"),
        (["--space", "shortcuts", "--workers-per-trial", "2", "--gpus-per-trial", "1"], "each worker drives one whole GPU, so give --gpus-per-trial 2"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    out = tmp_path / "exp"
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main([*args, "--out", str(out), "--data", "synthetic"] if "--data" not in args else [*args, "--out", str(out)]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# A class decorator that raises: Python 3.11 names the decorator's line, 3.10 the class statement's.
DECORATOR_LINE = 3 if sys.version_info >= (3, 11) else 4


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param("x = 1\nraise RuntimeError('boom')\n", "failed while importing: RuntimeError: boom ({plugin}, line 2)", id="raises"),
        pytest.param("import zoo\n\n@zoo.register('not_a_module')\nclass NotAModule:\n    pass\n", "failed while importing: TypeError: @zoo.register('not_a_module') expects an nn.Module subclass, got <class '{module}.NotAModule'> ({plugin}, line %d)" % DECORATOR_LINE, id="block"),
        pytest.param("import search\n\n@search.register_space('{module}_returns_5')\ndef space(trial):\n    return 5\n", "TypeError: space function space returned 5; a space returns a dict", id="space"),
        # Imported fine, but a grid configuration cannot be built: found before Ray starts.
        pytest.param("import search\n\n@search.register_space('{module}')\ndef space(trial):\n    trial.suggest_categorical('depth', [20, 21])\n    return {{'model': 'resnet20'}}\n", "space {module}, configuration {{'depth': 21}}: depth 21 is not 6n+2", id="grid"),
    ],
)
def test_a_plugin_that_fails_or_registers_something_broken_is_one_line(code: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    module = f"resbench_broken_plugin_{request.node.callspec.id}"
    plugin = tmp_path / f"{module}.py"
    plugin.write_text(code.format(module=module))
    monkeypatch.syspath_prepend(str(tmp_path))
    space = module if "configuration" in message else "shortcuts"
    assert main(["--space", space, "--data", "synthetic", "--plugins", module, "--time-budget", "5", "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(module=module, plugin=plugin) in err, err
    assert not (tmp_path / "exp").exists()


def test_unreachable_address_is_one_line(tmp_path: Path) -> None:
    result = run_search_cli(["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--address", "127.0.0.1:1", "--out", str(tmp_path / "exp")], ray_environment(short_temp_dir()))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot reach a Ray cluster at --address 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "exp").exists()


