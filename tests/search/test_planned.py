"""A grid without Ray: a planned command run as any launcher would, collected on a machine that
has neither Ray nor Optuna, unfinished trials listed with their reason.

(That collecting gives the rows of a Ray search of the same trials is tested beside the Ray
search, in test_run.py; ``benchmarks/gpu_check.py --dry-run``, in tests/benchmarks, runs planned
commands through ``--run-planned``.)
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import optuna
import pytest
from PIL import Image

import zoo
from leaderboards.schema import read_table
from search.planned import (
    LOG_FILE,
    PlannedExperiment,
    bundle,
    collect,
    device_groups,
    place_in_repository,
    plan_unless_planned,
    run_planned,
    unfinished_reason,
)
from search.run import main
from search.study import STUDY_FILE
from tests.search.conftest import FAST
from tests.search.helpers import write_photo_folder
from tests.test_layering import WITHOUT_RAY_AND_OPTUNA

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # runs planned commands and a collect in fresh processes


def plan(out: Path, *flags: str) -> PlannedExperiment:
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--recipe", *FAST, "epochs=1", "--out", str(out), "--plan", *flags]
    assert main(args) == 0
    return PlannedExperiment.load(out)


def load_study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="shortcuts", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE))))


def test_collect_needs_neither_ray_nor_optuna_and_lists_what_has_not_finished(tmp_path: Path) -> None:
    experiment = plan(tmp_path / "planned", "--trials", "2")  # 2 ResNets and the baseline
    first = experiment.trials[0]  # run as any launcher would: its command, from the plan's root
    ran = subprocess.run([sys.executable, *first.words()], cwd=experiment.root, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    refused = experiment.trials[1].out(experiment.root)
    assert refused == tmp_path.resolve() / "planned" / "trials" / "trial_0001"  # not REPO/../../tmp/...: messages name it
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


def test_collect_before_any_trial_has_started_lists_them_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No trial has a metrics.csv yet: curves.csv once had only trial_id and epoch, and the page
    then refused it for lacking the columns its plot reads."""
    experiment = plan(tmp_path / "planned", "--trials", "1", "--no-baselines")
    capsys.readouterr()
    assert main(["--collect", str(experiment.out)]) == 75  # not all finished: run again to continue
    err = capsys.readouterr().err
    assert err.strip() == "1 trial(s) not finished: run the same command again to continue them"
    assert list(read_table(experiment.out / "results.csv")["reason"]) == ["not started"]
    assert "not started" in (experiment.out / "shortcuts.md").read_text()


PLUGIN = """
import torch.nn as nn

import search
import zoo


@zoo.register("{module}_block")
class OneConvBlock(nn.Module):
    expansion = 1
    after_addition = "relu"

    def __init__(self, in_channels, channels, stride=1, **options):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.bn(self.conv(x))


@search.register_space("{module}", sampler="grid")
def space(trial):
    trial.suggest_categorical("block", ["basic", "{module}_block"])
    return {{"model": "resnet20", "depth": 8, "shortcut": "B"}}
"""


def test_a_users_block_is_planned_trained_by_its_command_and_collected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--plan once refused --plugins: a user's own block could be searched only with Ray."""
    module = "resbench_planned_plugin"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(module=module))
    monkeypatch.chdir(tmp_path)  # the plan's root: its commands run here, where the module is
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["--space", module, "--plugins", module, "--budget", "smoke", "--data", "synthetic", "--recipe", *FAST, "epochs=1", "--no-baselines", "--out", "planned", "--plan"]
    assert main(args) == 0
    experiment = PlannedExperiment.load(tmp_path / "planned")
    theirs = next(trial for trial in experiment.trials if trial.config["block"] == f"{module}_block")
    assert f"--plugins {module} " in theirs.command
    ran = subprocess.run([sys.executable, *theirs.words()], cwd=experiment.root, capture_output=True, text=True, timeout=300)  # as any launcher runs it
    assert ran.returncode == 0, ran.stderr[-2000:]
    elsewhere = subprocess.run([sys.executable, "-m", "search.run", "--collect", str(experiment.out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert elsewhere.returncode == 75 and "1 trial(s) not finished" in elsewhere.stderr  # from another folder: the module is found in the plan's
    rows = read_table(experiment.out / "results.csv").set_index("trial_id")
    assert rows.loc[theirs.trial_id, "status"] == "completed" and rows.loc[theirs.trial_id, "block"] == f"{module}_block"
    # Its trained net, in fresh processes: predicted from its weights and probed, given the module.
    run = theirs.out(experiment.root)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "photo.jpg")
    for command in (["zoo", "predict", str(run / "model_final.safetensors"), "photo.jpg"], ["search.probe", "responses", "--runs", str(run), "--out", "responses"]):
        refused = subprocess.run([sys.executable, "-m", *command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and f"unknown block '{module}_block'" in refused.stderr
        done = subprocess.run([sys.executable, "-m", *command, "--plugins", module], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "responses" / "responses.csv").exists()


def test_a_trial_whose_summary_cannot_be_read_is_listed_with_what_to_do(tmp_path: Path) -> None:
    """Its command refuses to run until the torn summary is deleted; collect once said "run its
    command again to resume", which only repeated the refusal."""
    run = tmp_path / "trial_0000"
    (run / "checkpoint").mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "compl')
    reason = unfinished_reason(run)
    assert reason.startswith(f"{run / 'summary.json'} is not a summary written by search.train (") and reason.endswith("delete it to finish the run again")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collect", "/no/such/experiment"], "/no/such/experiment holds no planned experiment (no plan.json)"),
        (["--collect", "{exp}", "--budget", "paper"], "--budget does not apply to --collect, which takes no other option: the experiment's search.json fixes its settings"),
        (["--collect", "{exp}", "--out", "{exp}-elsewhere"], "--out does not apply to --collect"),
        (["--run-planned", "{exp}", "--jobs", "2", "--space", "depth"], "--space does not apply to --run-planned, which takes only --jobs, --gpus, --time-budget"),
        (["--run-planned", "{exp}", "--collect", "{exp}"], "--collect does not apply to --run-planned"),
        (["--space", "shortcuts", "--data", "synthetic", "--out", "{exp}", "--jobs", "4"], "--jobs applies only to --run-planned (--plan writes the commands, --run-planned EXPERIMENT --jobs N runs them); a Ray search packs its trials by --cpus-per-trial and --gpus-per-trial"),
        (["--space", "shortcuts", "--data", "synthetic", "--out", "{exp}", "--plan", "--gpus", "0"], "--gpus applies only to --run-planned"),
        # Once a Ray search ran into the planned folder, its trials beside the planned ones.
        (["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--out", "{exp}", "--resume"], "holds a planned experiment (plan.json); run it with --run-planned"),
        # Once written into search.json and obeyed by nothing.
        (["--space", "shortcuts", "--data", "synthetic", "--out", "{exp}", "--plan", "--time-budget", "600"], "--time-budget does not apply to --plan, which trains nothing: give it to --run-planned EXPERIMENT, which stops launching when it runs out"),
        (["--space", "shortcuts", "--data", "synthetic", "--out", "{exp}", "--plan", "--retries", "5"], "--retries applies to a Ray search, not to --plan: its commands run under any launcher"),
        (["--space", "shortcuts", "--data", "synthetic", "--out", "{exp}", "--plan", "--address", "10.0.0.1:6379"], "--address applies to a Ray search, not to --plan"),
    ],
)
def test_an_option_the_mode_would_ignore_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    """Each was once dropped without a word: a collect given --out wrote in the experiment, a
    Ray search given --jobs 4 ran as if it were not there."""
    experiment = plan(tmp_path / "planned", "--trials", "1", "--no-baselines")
    before = sorted((path, path.stat().st_mtime_ns) for path in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main([arg.format(exp=experiment.out) for arg in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted((path, path.stat().st_mtime_ns) for path in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus", "x"], "--gpus x: not an index of this machine's GPUs; valid: "),
        (["--gpus", "99"], "--gpus 99: not an index of this machine's GPUs; valid: "),
        (["--time-budget", "-1"], "--time-budget must be a positive number, got -1.0"),
    ],
)
def test_the_runner_refuses_bad_input_before_it_launches_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    experiment = plan(tmp_path / "planned", "--trials", "1", "--no-baselines")
    capsys.readouterr()
    assert main(["--run-planned", str(experiment.out), "--jobs", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (experiment.out / "trials").exists() and not (experiment.out / "results.csv").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--recipe", "val_size=3000"], "error: val_size 3000 leaves fewer than half of the 4000 training images to train on; valid: test_size + val_size at most 2000"),
        (["--data", "no-such-folder"], "error: --data 'no-such-folder' is neither a data set name"),
        (["--workers-per-trial", "2", "--recipe", "batch_size=63"], "error: batch_size 63 is the global batch; 2 workers need a multiple of 2"),
    ],
)
def test_a_plan_whose_every_trial_would_be_refused_is_refused_when_planned(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    out = tmp_path / "planned"
    argv = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--out", str(out), "--plan", *flags]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and len(captured.err.strip().splitlines()) == 1
    assert captured.out == "" and not out.exists()


def test_a_trial_of_two_workers_is_planned_as_a_torchrun_and_run_collected_and_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Slurm array or --run-planned has no Ray Train to start a trial's workers: the planned
    # command is the torchrun a Ray search's row names, each process with its share of the CPUs.
    experiment = plan(tmp_path / "planned", "--trials", "1", "--no-baselines", "--workers-per-trial", "2", "--cpus-per-trial", "2")
    [trial] = experiment.trials
    assert trial.command.startswith("torchrun --standalone --nproc-per-node=2 -m search.train ") and " --threads 1 " in trial.command
    assert trial.workers == 2 and trial.words(1)[:4] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # the ranks' sockets on loopback (the runner's commands inherit it)
    assert run_planned(experiment.out, jobs=1) == 0
    summary = json.loads((trial.out(experiment.root) / "summary.json").read_text())
    assert (summary["status"], summary["world_size"]) == ("completed", 2)
    row = collect(experiment.out).iloc[0]
    assert (row["status"], row["world_size"]) == ("completed", 2)
    said: list[str] = []
    assert run_planned(experiment.out, jobs=1, say=said.append) == 0  # finished: not launched again
    assert said == ["planned: 1 of 1 planned trials finished; running 0, 1 at a time, 2 processes of 1 thread(s) each"]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_the_runner_checkpoints_its_trials_and_the_same_command_finishes_them(tmp_path: Path, workers: int) -> None:
    # The trial (2 steps an epoch) holds before its second epoch's first step until asked to stop: the runner is
    # signalled mid-trial every time. Under torchrun the stop reaches the ranks through torchrun,
    # which then exits 1 of its own (the ranks exit 75): still a trial stopped with a checkpoint.
    out = tmp_path / "planned"
    assert main(["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--recipe", *FAST, "batch_size=64", "epochs=2", "--trials", "1", "--no-baselines", "--workers-per-trial", str(workers), "--cpus-per-trial", str(workers), "--out", str(out), "--plan"]) == 0
    experiment = PlannedExperiment.load(out)
    trial = experiment.trials[0].out(experiment.root)
    environment = {**os.environ, "RESBENCH_FAULT": "stall_at_step:3", "GLOO_SOCKET_IFNAME": "lo"}
    command = [sys.executable, "-m", "search.run", "--run-planned", str(experiment.out), "--jobs", "1"]
    runner = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (trial / "metrics.csv").exists() and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (trial / "metrics.csv").exists(), "the trial never finished its first epoch"
        runner.send_signal(signal.SIGTERM)
        stdout, stderr = runner.communicate(timeout=120)
    finally:
        runner.kill()
    assert runner.returncode == 75, stderr[-2000:]
    assert "trial_0000 resnet20 seed 0: stopped with a checkpoint" in stdout, stdout
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "trial_0000 resnet20 seed 0: completed" in finished.stdout
    assert "resuming trial_0000 from epoch 1/2" in (trial / LOG_FILE).read_text()


def test_gpus_are_given_out_in_groups_of_a_trials_workers() -> None:
    assert device_groups(["0", "1", "2", "3"], 1) == ["0", "1", "2", "3"]
    assert device_groups(["0", "1", "2", "3"], 2) == ["0,1", "2,3"]
    with pytest.raises(ValueError, match=r"^--gpus 0,1,2: each planned trial trains on 2 GPUs, one per worker; valid: a multiple of 2 GPUs$"):
        device_groups(["0", "1", "2"], 2)


def test_an_experiment_is_continued_only_when_it_holds_the_same_grid(tmp_path: Path) -> None:
    """The GPU check and the campaign continue the grid they find; a folder holding another
    search (a tiny dry run's, whose finished trials would pass for the real grid's) is refused."""
    out = tmp_path / "grid"
    options = {"data": "synthetic", "budget": "smoke", "recipe": {"epochs": 1}, "trials": 2, "baselines": False, "out": str(out)}
    planned = plan_unless_planned("shortcuts", **options)
    assert planned is not None and len(planned.trials) == 2
    settings = (out / "search.json").read_text()
    assert plan_unless_planned("shortcuts", **options) is None  # planned before: left as it was
    assert (out / "search.json").read_text() == settings
    with pytest.raises(ValueError, match=r"holds a search with budget='smoke', not 'quick'; use another --out"):
        plan_unless_planned("shortcuts", **{**options, "budget": "quick"})
    with pytest.raises(ValueError, match=r"holds a search with data='synthetic', not 'elsewhere'"):
        plan_unless_planned("shortcuts", **{**options, "data": "elsewhere"})
    assert (out / "search.json").read_text() == settings


@pytest.mark.full_smoke
def test_every_configuration_of_the_imagenet_space_trains_at_the_datas_size(tmp_path: Path) -> None:
    """Tables 2 and 3 at 64 px on a small folder: plain (shortcut none) and residual 18/34,
    shortcuts A/B/C at 34, ResNet-50/101/152 and VGG-16, each one epoch, through the planned runner."""
    write_photo_folder(tmp_path / "photos", "train", per_class=30, classes=3, suffix=".jpg")
    out = tmp_path / "imagenet"
    assert main(["--space", "imagenet", "--budget", "smoke", "--data", str(tmp_path / "photos"), "--out", str(out), "--plan",
                 "--recipe", "val_size=8", "test_size=8", "eval_batch_size=8", "train_subset=32", "batch_size=16", "epochs=1"]) == 0
    assert run_planned(out, jobs=2, say=lambda line: None) == 0
    rows = collect(out)
    assert (rows["status"] == "completed").all() and len(rows) == len(PlannedExperiment.load(out).trials)
    configured = [(row["model"], row["config_shortcut"] if isinstance(row["config_shortcut"], str) else None) for _, row in rows.iterrows()]
    assert configured == [("resnet18", "none"), ("resnet18", "A"), ("resnet34", "none"), ("resnet34", "A"), ("resnet34", "B"), ("resnet34", "C"), ("resnet50", None), ("resnet101", None), ("resnet152", None), ("vgg16", None)]
    for (model, shortcut), (_, row) in zip(configured, rows.iterrows(), strict=True):
        overrides = {"shortcut": shortcut} if shortcut else {}
        assert row["image_size"] == 64 and row["macs"] == zoo.complexity(model, num_classes=3, input_size=64, **overrides).macs, model


def test_the_imagenet_space_plans_at_the_datas_size_and_trains_its_two_cheapest_nets(tmp_path: Path) -> None:
    write_photo_folder(tmp_path / "photos", "train", per_class=30, classes=3, suffix=".jpg")
    out = tmp_path / "imagenet"
    assert main(["--space", "imagenet", "--budget", "smoke", "--data", str(tmp_path / "photos"), "--trials", "2", "--out", str(out), "--plan", "--decode", "device",
                 "--recipe", "val_size=8", "test_size=8", "eval_batch_size=8", "train_subset=32", "batch_size=16", "epochs=1", "data_path=stream"]) == 0
    experiment = PlannedExperiment.load(out)
    assert [t.config for t in experiment.trials] == [{"model": "resnet18", "shortcut": "none", "seed": 0}, {"model": "resnet18", "shortcut": "A", "seed": 0}]
    assert "--image-size" not in experiment.trials[0].command, "the ImageNet family's smoke budget sets 64 px itself"
    assert "--decode device" in experiment.trials[0].command, "how the search runs reaches every planned command"
    assert run_planned(out, jobs=2, say=lambda line: None) == 0
    rows = collect(out)
    assert list(rows["status"]) == ["completed", "completed"] and list(rows["shortcut"]) == ["none", "A"]
    summary = json.loads((out / "trials" / "trial_0000" / "summary.json").read_text())
    assert summary["image_size"] == 64 and summary["eval_size"] == {"resize": 73, "crop": 64, "crops": 1}
    assert (summary["data_path"], summary["decode"]) == ("stream", "device")
    assert summary["macs"] == zoo.complexity("resnet18", shortcut="none", num_classes=3, input_size=64).macs


def test_a_bundle_unpacked_at_the_repository_root_puts_each_folder_back_where_it_was(tmp_path: Path) -> None:
    """A device's campaign or grid comes back as tar parts: their names are paths from the
    repository root, so `tar xz` there lands the campaign where `status` and `publish` look."""
    assert place_in_repository(REPO / "experiments" / "campaign", "elsewhere") == "experiments/campaign"
    assert place_in_repository(Path("experiments/campaign"), "elsewhere") == "experiments/campaign"  # from the root, as the device runs it
    outside = tmp_path / "check"
    assert place_in_repository(outside, "experiments/gpu-check/1") == "experiments/gpu-check/1"
    (outside / "trials" / "t").mkdir(parents=True)
    (outside / "check.md").write_text("tables")
    (outside / "trials" / "t" / "summary.json").write_text("{}")
    (outside / "trials" / "t" / "checkpoint").mkdir()
    (outside / "trials" / "t" / "checkpoint" / "checkpoint.pt").write_bytes(b"never brought back")
    parts = bundle({place_in_repository(outside, "experiments/gpu-check/1"): outside}, tmp_path / "back", part_bytes=64)
    assert len(parts) > 1 and all(part.stat().st_size <= 64 for part in parts)
    root = tmp_path / "root"
    root.mkdir()
    stream = subprocess.Popen(["tar", "xz", "-C", str(root)], stdin=subprocess.PIPE)
    stream.communicate(b"".join(part.read_bytes() for part in parts))
    assert stream.returncode == 0
    assert sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()) == ["experiments/gpu-check/1/check.md", "experiments/gpu-check/1/trials/t/summary.json"]


def test_bundling_again_replaces_the_bundle_whole(tmp_path: Path) -> None:
    """The GPU check bundles after every step, so a kill still brings back what finished: a later,
    smaller bundle leaves no part of the earlier one for `cat bundle.tar.gz.part*` to pick up,
    and a table being written at that moment (its .tmp file) is not packed."""
    folder = tmp_path / "check"
    folder.mkdir()
    (folder / "throughput.csv").write_bytes(random.Random(0).randbytes(4096))  # incompressible: several parts
    back = tmp_path / "back"
    assert len(bundle({"c": folder}, back, part_bytes=512)) > 2
    (folder / "throughput.csv").write_text("mode,images_per_second\n")
    (folder / ".check.md.123.abcd1234.tmp").write_text("half a table")
    parts = bundle({"c": folder}, back, part_bytes=512)
    assert len(parts) == 1 and sorted(back.iterdir()) == parts
    with tarfile.open(fileobj=io.BytesIO(parts[0].read_bytes())) as archive:
        assert archive.getnames() == ["c/throughput.csv"]
        assert archive.extractfile("c/throughput.csv").read() == b"mode,images_per_second\n"


@pytest.mark.parametrize(("torn", "what"), [("plan.json", "a plan (plan.json, written by search.run --plan)"), ("search.json", "a search's settings (search.json, written by search.run)")])
def test_a_torn_record_is_one_line_naming_the_file(torn: str, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = plan(tmp_path / "planned", "--trials", "1", "--no-baselines")
    (experiment.out / torn).write_text('{"space": "shortc')  # torn by an old crash, or edited by hand
    capsys.readouterr()
    assert main(["--collect", str(experiment.out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{experiment.out / torn} is not {what} (" in err, err
    assert not (experiment.out / "results.csv").exists()
