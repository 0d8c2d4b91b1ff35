"""A grid without Ray: planned commands, collected into the rows a Ray search of the same trials
makes, on a machine that has neither Ray nor Optuna.

(``benchmarks/gpu_check.py --dry-run``, tested in tests/benchmarks, runs planned commands for real
through ``--run-planned``.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from leaderboards.schema import read_table
from search.planned import LOG_FILE, PlannedExperiment, collect, run_planned
from search.run import main
from search.study import STUDY_FILE
from tests.search.conftest import FAST
from tests.test_layering import WITHOUT_RAY_AND_OPTUNA

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # compares with a real Ray search (in the Ray tests' worker)
# What differs between two runs of the same trial on one machine, or between launchers.
NOT_COMPARED = ["trial_id", "node", "gpu_ids", "command", "wall_seconds", "images_per_second", "inference_images_per_second"]


def plan(out: Path, *flags: str) -> PlannedExperiment:
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--recipe", *FAST, "epochs=1", "--out", str(out), "--plan", *flags]
    assert main(args) == 0
    return PlannedExperiment.load(out)


def key(model: str, shortcut: object, seed: object) -> tuple[str, str, int]:
    return (model, "-" if pd.isna(shortcut) else str(shortcut), int(seed))


def hand_over_ray_trials(experiment: PlannedExperiment, ray_out: Path, only: int | None = None) -> None:
    """Give each planned trial what the Ray trial of the same configuration and seed wrote: the
    directory its command would have produced (same identity, same computation)."""
    ray_rows = read_table(ray_out / "results.csv")
    by_key = {key(r["model"], r.get("config_shortcut"), r["seed"]): r["trial_id"] for _, r in ray_rows.iterrows()}
    for trial in experiment.trials[:only]:
        ray_id = by_key[key(trial.config["model"], trial.config.get("shortcut"), trial.config["seed"])]
        shutil.copytree(ray_out / "trials" / ray_id, trial.out(experiment.root))


def load_study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="shortcuts", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE))))


def test_collecting_a_plan_gives_the_rows_and_study_of_the_ray_search_of_the_same_trials(shortcuts_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = plan(tmp_path / "planned", "--seeds", "2", "--trials", "8")  # the Ray fixture's search
    commands = capsys.readouterr().out.splitlines()
    assert commands == [trial.command for trial in experiment.trials] and len(commands) == 10
    assert all(c.startswith("python -m search.train ") and " --threads 1 " in c and " --out /" not in c for c in commands)
    hand_over_ray_trials(experiment, shortcuts_run)
    planned = collect(experiment.out)
    ray = read_table(shortcuts_run / "results.csv")
    assert sorted(planned.columns) == sorted(ray.columns)
    order = lambda frame: frame.assign(key=[key(*k) for k in zip(frame["model"], frame.get("config_shortcut"), frame["seed"])]).sort_values("key").drop(columns=[*NOT_COMPARED, "key"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(order(read_table(experiment.out / "results.csv")), order(ray), check_dtype=False)
    planned_study, ray_study = load_study(experiment.out), load_study(shortcuts_run)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in planned_study.trials)
    signature = lambda study: sorted((sorted(t.params.items()), t.user_attrs["seed"], t.user_attrs.get("baseline", "")) for t in study.trials)  # noqa: E731
    assert signature(planned_study) == signature(ray_study)
    collect(experiment.out)  # a second collect adds nothing to the study
    assert len(load_study(experiment.out).trials) == 10
    said: list[str] = []
    assert run_planned(experiment.out, jobs=2, say=said.append) == 0  # every trial finished: none runs again
    assert len(said) == 1 and said[0].startswith("planned: 10 of 10 planned trials finished; running 0,")


def test_collect_needs_neither_ray_nor_optuna_and_lists_what_has_not_finished(shortcuts_run: Path, tmp_path: Path) -> None:
    experiment = plan(tmp_path / "planned", "--trials", "2")  # 2 ResNets and the baseline
    hand_over_ray_trials(experiment, shortcuts_run, only=1)
    refused = experiment.trials[1].out(experiment.root)
    refused.mkdir(parents=True)
    (refused / LOG_FILE).write_text("error: --device cuda was requested but no CUDA device is visible to this process\n")
    argv = ["search.run", "--collect", str(experiment.out)]  # on a machine without Ray and Optuna
    code = WITHOUT_RAY_AND_OPTUNA + f"import runpy\nsys.argv = {argv!r}\nrunpy.run_module('search.run', run_name='__main__')\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 75, result.stderr[-2000:]  # not all finished: run again to continue
    assert "2 trial(s) not finished" in result.stderr and "Traceback" not in result.stderr
    rows = read_table(experiment.out / "results.csv").set_index("trial_id")
    assert list(rows["status"]) == ["completed", "unfinished", "unfinished"]
    assert rows.loc["trial_0001", "reason"] == "--device cuda was requested but no CUDA device is visible to this process"
    assert rows.loc["trial_0002", "reason"] == "not started"
    assert "not started" in (experiment.out / "shortcuts.md").read_text()
    assert load_study(experiment.out).trials == []  # written where Optuna is importable...
    collect(experiment.out)
    study = load_study(experiment.out)  # ...and brought up to date by a later collect that has it
    assert [(t.state, t.user_attrs["planned_trial_id"]) for t in study.trials] == [(optuna.trial.TrialState.COMPLETE, "trial_0000")]
