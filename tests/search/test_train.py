"""The training loop: outputs, resume, determinism, divergence, saved weights and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from search import provenance
from search.augment import Normalize
from search.config import TrialConfig
from search.data import load_dataset
from search.measure import evaluate
from search.provenance import resolve_precision
from search.train import METRICS_COLUMNS, main, train
from tests.search.helpers import write_image_folder

REQUIRED_SUMMARY_KEYS = {
    "status", "val_accuracy", "best_val_accuracy", "test_accuracy", "train_error", "params", "macs",
    "epochs", "wall_seconds", "images_per_second", "inference_images_per_second", "peak_memory_bytes",
    "test_source", "data_seed", "device", "torch_version", "seed", "git_commit", "recipe", "command",
}
REPO = Path(__file__).resolve().parents[2]
DETERMINISTIC_COLUMNS = ["epoch", "train_loss", "train_error", "val_accuracy", "lr"]


def smoke(model: str = "resnet20", data: str = "synthetic", **recipe: object) -> TrialConfig:
    return TrialConfig(model=model, data=data, budget="smoke", recipe_overrides=dict(recipe), threads=1)


def test_smoke_run_on_synthetic_data_learns_and_writes_everything(tmp_path: Path) -> None:
    summary = train(smoke(epochs=4), tmp_path, log=None)
    assert REQUIRED_SUMMARY_KEYS <= set(summary)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 4
    for key in ("val_accuracy", "best_val_accuracy", "test_accuracy", "train_error"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["val_accuracy"] > 0.3, "synthetic labels depend on the pixels; chance is 0.1"
    assert summary["params"] == zoo.complexity("resnet20").params and summary["macs"] == zoo.complexity("resnet20").macs
    assert summary["test_source"] == "carved" and summary["recipe"]["epochs"] == 4
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == METRICS_COLUMNS and list(metrics["epoch"]) == [1, 2, 3, 4]
    assert summary["command"].startswith("python -m search.train --model resnet20 --epochs 4")
    assert (tmp_path / "model_best.safetensors").exists() and (tmp_path / "model_final.safetensors").exists()


def test_image_folder_run_with_test_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_image_folder(data, "train", per_class=40)
    write_image_folder(data, "test", per_class=10, seed=5)
    summary = train(smoke(data=str(data), val_size=12), tmp_path / "run", log=None)
    assert summary["status"] == "completed" and summary["test_source"] == "folder"
    assert summary["splits"]["test"] == 30 and summary["splits"]["val"] == 12


def test_saved_weights_rebuild_the_trained_model(tmp_path: Path) -> None:
    config = smoke(train_subset=128)
    summary = train(config, tmp_path, log=None)
    loaded = zoo.load(tmp_path / "model_final.safetensors").to(memory_format=torch.channels_last)
    recipe = config.recipe()
    data = load_dataset("synthetic", data_seed=0, val_size=recipe.val_size, test_size=recipe.test_size)
    normalize = Normalize(data.mean, data.std, torch.device("cpu"), channels_last=True)
    precision = resolve_precision(recipe.precision, torch.device("cpu"))
    assert evaluate(loaded, data.val, normalize, 256, torch.device("cpu"), precision) == summary["val_accuracy"]


def test_finished_run_is_not_retrained(tmp_path: Path) -> None:
    train(smoke(train_subset=128), tmp_path, log=None)
    before = (tmp_path / "summary.json").stat().st_mtime_ns
    lines: list[str] = []
    again = train(smoke(train_subset=128), tmp_path, log=lines.append)
    assert (tmp_path / "summary.json").stat().st_mtime_ns == before
    assert again["status"] == "completed" and "not retraining" in lines[0]


def test_injected_nan_stops_as_diverged_with_metrics_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESBENCH_FAULT", "nan_at_step:12")  # smoke: 8 steps per epoch -> epoch 2
    summary = train(smoke(epochs=3), tmp_path, log=None)
    assert summary["status"] == "diverged"
    # Found without a host sync per step: looked at every 25 steps or at the epoch's end (step 16).
    assert summary["diverged_at"] == {"epoch": 2, "step": 12, "seen_at_step": 16}
    assert summary["epochs"] == 1 and summary["test_accuracy"] is None
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    refuse = lambda constant: (_ for _ in ()).throw(ValueError(constant))  # noqa: E731
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)  # strict JSON: no NaN


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search.train", *args], cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.slow  # a subprocess killed mid-run
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    args = ["--model", "resnet20", "--depth", "8", "--data", "synthetic", "--budget", "smoke", "--epochs", "4", "--train-subset", "128", "--threads", "1"]
    train(TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"epochs": 4, "train_subset": 128}, threads=1), tmp_path / "whole", log=None)
    killed = run_cli([*args, "--out", str(tmp_path / "killed")], env={"RESBENCH_FAULT": "exit_after_epoch:2"})
    assert killed.returncode == 3 and not (tmp_path / "killed" / "summary.json").exists()
    assert len(pd.read_csv(tmp_path / "killed" / "metrics.csv")) == 2
    resumed = run_cli([*args, "--out", str(tmp_path / "killed")], env={"RESBENCH_FAULT": "exit_after_epoch:2"})
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming killed from epoch 2/4" in resumed.stdout
    expected = pd.read_csv(tmp_path / "whole" / "metrics.csv")[DETERMINISTIC_COLUMNS]
    got = pd.read_csv(tmp_path / "killed" / "metrics.csv")[DETERMINISTIC_COLUMNS]
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    final = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "killed")]
    assert final[0]["test_accuracy"] == final[1]["test_accuracy"]


def test_checkpoint_loads_with_weights_only_and_goes_when_the_run_is_done(tmp_path: Path) -> None:
    seen: list[dict] = []
    report = lambda row: seen.append(torch.load(tmp_path / "checkpoint" / "checkpoint.pt", weights_only=True))  # noqa: E731
    train(smoke(train_subset=128), tmp_path, log=None, report=report)
    assert [state["epoch"] for state in seen] == [1, 2]
    assert set(seen[-1]) >= {"model", "optimizer", "scheduler", "generator", "torch_rng"}
    # finished: no resumable state stays; the final and best weights do
    assert not (tmp_path / "checkpoint").exists()
    assert (tmp_path / "model_final.safetensors").exists() and (tmp_path / "model_best.safetensors").exists()


TINY = TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"train_subset": 128}, threads=1)


def checkpoint_after_one_epoch(config: TrialConfig, out: Path) -> Path:
    """Train ``config`` into ``out`` and stop it (as Ctrl-C would) right after its first epoch's
    checkpoint; the checkpoint's path."""
    def stop(row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, out, log=None, report=stop)
    return out / "checkpoint" / "checkpoint.pt"


@pytest.mark.parametrize("leftover", ["nothing", "a partial temporary file"])
def test_a_run_whose_first_checkpoint_was_never_completed_trains_from_the_start(tmp_path: Path, leftover: str) -> None:
    # A write that failed (a full disk) leaves the checkpoint folder empty; a write killed midway
    # leaves its temporary file there. Neither is a checkpoint: the run starts over and completes.
    folder = tmp_path / "interrupted" / "checkpoint"
    folder.mkdir(parents=True)
    if leftover != "nothing":
        (folder / ".checkpoint.pt.4242.d913df5a.tmp").write_bytes(b"PK\x03\x04 cut short")
    summary = train(TINY, tmp_path / "interrupted", log=None)
    assert summary["status"] == "completed" and not folder.exists()
    train(TINY, tmp_path / "whole", log=None)
    got, expected = (pd.read_csv(tmp_path / name / "metrics.csv")[DETERMINISTIC_COLUMNS] for name in ("interrupted", "whole"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_auto_precision_is_decided_when_a_run_starts_and_kept_by_its_resume(tmp_path: Path) -> None:
    here = resolve_precision("auto", torch.device("cpu"))
    elsewhere = "bf16" if here == "fp32" else "fp32"  # what a machine of the other kind decides

    tiny = TINY
    path = checkpoint_after_one_epoch(tiny, tmp_path)
    state = torch.load(path, weights_only=True)
    assert state["precision"] == here
    state["precision"] = elsewhere  # as if the run had started on the other machine
    torch.save(state, path)
    summary = train(tiny, tmp_path, log=None)
    assert summary["precision"] == elsewhere and summary["recipe"]["precision"] == "auto"


def test_deterministic_kernels_are_recorded_replayed_and_resume_a_default_run_bitwise(tmp_path: Path) -> None:
    """--deterministic is how a run executes: its command replays it, its summary records it, it
    resumes a run started without it (the CPU's kernels give the same bits either way), and the
    caller's process gets its own setting back."""
    deterministic = TrialConfig(**{**TINY.__dict__, "deterministic": True})
    torch.use_deterministic_algorithms(True, warn_only=True)  # the caller's own setting, which a run sets aside
    try:
        whole = train(TINY, tmp_path / "whole", log=None)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    checkpoint_after_one_epoch(TINY, tmp_path / "mixed")
    mixed = train(deterministic, tmp_path / "mixed", log=None)
    assert not torch.are_deterministic_algorithms_enabled()
    assert mixed["status"] == "completed" and mixed["deterministic"] and not whole["deterministic"]
    assert mixed["command"].endswith(f" --device auto --deterministic --out {tmp_path / 'mixed'}")
    got, expected = (pd.read_csv(tmp_path / name / "metrics.csv")[DETERMINISTIC_COLUMNS] for name in ("mixed", "whole"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert mixed["test_accuracy"] == whole["test_accuracy"]


class OneConvBlock(nn.Module):
    """A residual branch of one 3x3 conv and its BN, which the tests' own blocks extend."""

    expansion = 1
    after_addition = "relu"

    def __init__(self, in_channels: int, channels: int, stride: int = 1, **options: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_a_resumed_run_with_dropout_draws_the_uninterrupted_runs_masks(tmp_path: Path, device: str) -> None:
    """Dropout draws from the device's default generator (the CPU's, or the GPU's), which the
    checkpoint holds: resumed, the run goes on with the masks it would have drawn, bitwise under
    deterministic kernels."""

    @zoo.register("test_dropout_block")
    class Dropping(OneConvBlock):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(super().forward(x), 0.3, self.training)

    config = TrialConfig(**{**TINY.__dict__, "model_overrides": {"depth": 8, "block": "test_dropout_block"}, "device": device, "deterministic": True, "recipe_overrides": {"train_subset": 128, "epochs": 3}})
    train(config, tmp_path / "whole", log=None)
    checkpoint_after_one_epoch(config, tmp_path / "resumed")
    train(config, tmp_path / "resumed", log=None)
    got, expected = (pd.read_csv(tmp_path / name / "metrics.csv")[DETERMINISTIC_COLUMNS] for name in ("resumed", "whole"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_model_without_deterministic_kernels_is_refused_in_one_line_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    @zoo.register("test_unpooling_block")
    class Unpooling(OneConvBlock):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_unpool2d(*F.max_pool2d(super().forward(x), 2, return_indices=True), 2)  # max-unpooling: no deterministic kernel on any device

    args = ["--model", "resnet20", "--depth", "8", "--block", "test_unpooling_block", "--data", "synthetic", "--budget", "smoke", "--train-subset", "128", "--epochs", "1", "--threads", "1"]
    assert main([*args, "--deterministic", "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --deterministic: resnet20 trains through max_unpooling2d_forward_out, which has no deterministic cpu kernel in torch " + torch.__version__ + "; run it without --deterministic"
    assert not (tmp_path / "refused").exists() and not torch.are_deterministic_algorithms_enabled()
    assert main([*args, "--out", str(tmp_path / "trained")]) == 0  # the same run with torch's default kernels


def test_best_weights_of_the_last_epoch_are_the_final_file_not_a_copy(tmp_path: Path) -> None:
    summary = train(smoke(train_subset=128), tmp_path, log=None)
    best, final = tmp_path / "model_best.safetensors", tmp_path / "model_final.safetensors"
    if summary["best_val_accuracy"] == summary["val_accuracy"]:
        assert best.stat().st_ino == final.stat().st_ino
    else:
        assert best.stat().st_ino != final.stat().st_ino


def test_a_torn_checkpoint_resumes_from_the_previous_epoch_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "2", "--train-subset", "128", "--threads", "1", "--out", str(tmp_path)]
    killed = run_cli(args, env={"RESBENCH_FAULT": "exit_after_epoch:1"})
    assert killed.returncode == 3
    checkpoint = tmp_path / "checkpoint" / "checkpoint.pt"
    os.replace(checkpoint, checkpoint.with_name("previous.pt"))  # as a kill between the two writes leaves it...
    checkpoint.write_bytes(b"PK\x03\x04 torn")  # ...with the new file cut short
    assert main(args) == 0  # the same command, here
    said = capsys.readouterr().out
    assert f"checkpoint {checkpoint} is unreadable" in said and "resuming from the previous epoch's checkpoint" in said
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1, 2]


def test_an_unreadable_checkpoint_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "checkpoint.pt").write_bytes(b"")
    assert main(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {tmp_path / 'checkpoint' / 'checkpoint.pt'} is unreadable" in err and "delete it" in err
    assert len(err.strip().splitlines()) == 1 and "weights_only" not in err


def test_a_summary_the_run_did_not_write_is_named_not_trusted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "summary.json").write_text('{"status": "completed", "val')
    assert main(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'summary.json'} is not a summary written by search.train" in err and len(err.strip().splitlines()) == 1


def test_identity_holds_the_data_fingerprint_and_leaves_out_how_it_runs(tmp_path: Path) -> None:
    import shutil

    from tests.search.helpers import write_image_folder

    write_image_folder(tmp_path / "a", "train", per_class=5)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    here = TrialConfig(model="resnet20", data=str(tmp_path / "a"), budget="smoke", threads=1, device="cpu")
    there = TrialConfig(model="resnet20", data=str(tmp_path / "b"), budget="smoke", threads=8, device="auto")
    assert here.identity() == there.identity()  # planned on one machine, resumed on another
    assert str(tmp_path) not in json.dumps(here.identity())
    assert TrialConfig(model="resnet20", data="synthetic", budget="smoke").identity() != here.identity()


def test_other_run_in_the_same_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--train-subset", "128", "--out", str(tmp_path)]
    assert run_cli(common, env={"RESBENCH_FAULT": "exit_after_epoch:1"}).returncode == 3  # an interrupted run of one config...
    args = [*common, "--lr", "0.2"]
    assert main(args) == 2  # ...is not continued by another
    assert "holds a different run" in capsys.readouterr().err


def test_a_finished_run_answers_its_own_command_and_refuses_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data", "synthetic", "--budget", "smoke", "--epochs", "1", "--train-subset", "128", "--out", str(tmp_path)]
    assert main(["--model", "resnet20", *common]) == 0
    summary = (tmp_path / "summary.json").read_text()
    capsys.readouterr()
    assert main(["--model", "resnet20", *common]) == 0  # the same command again: done already
    assert "already holds this run, finished (completed); not retraining" in capsys.readouterr().out
    # Another model in the same folder was once answered with this run's summary and exit 0.
    assert main(["--model", "resnet32", *common]) == 2
    assert "holds a different finished run (model 'resnet20', not 'resnet32'); choose another --out" in capsys.readouterr().err
    assert main(["--model", "resnet20", "--seed", "1", *common]) == 2
    assert "(seed 0, not 1)" in capsys.readouterr().err
    assert (tmp_path / "summary.json").read_text() == summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet21"], "unknown model 'resnet21'"),
        (["--model", "resnet20", "--shortcutt", "B"], "unknown option --shortcutt"),
        (["--model", "resnet20", "--epochz", "3"], "recipe fields: epochs"),
        (["--model", "resnet20", "--epochs", "three"], "expects int"),
        (["--model", "resnet20", "--budget", "huge"], "valid: smoke, quick, paper"),
        (["--model", "resnet20", "--depth", "21"], "6n+2"),
        (["--model", "resnet20", "--depth", "8.0"], "depth must be a whole number, got 8.0"),  # once a traceback
        (["--model", "resnet20", "--width-multiplier", "1.5"], "width_multiplier must be a whole number, got 1.5"),
        (["--model", "resnet20", "--zero-init-residual", "maybe"], "zero_init_residual must be True or False, got 'maybe'"),  # once trained
        (["--model", "cifar_vgg16", "--image-size", "8", "--eval-resize", "8", "--eval-crop", "8"], "recipe field image_size 8: cifar_vgg16 cannot take 8x8 images"),
        (["--model", "resnet20", "--shortcut", "D"], "unknown shortcut 'D'; valid: A, B, C, none\n"),
        (["--model", "resnet20", "--data", "/no/such/folder"], "neither a data set name"),
        (["--model", "resnet20", "--epochs", "0"], "must be positive"),
        (["--model", "resnet20", "--val-size", "-1"], "recipe field val_size must not be negative, got -1"),
        # Refused once the data is loaded, after the run took its folder: the folder goes again.
        (["--model", "resnet20", "--val-size", "1800"], "val_size 1800 leaves fewer than half of the 4000 training images to train on; valid: test_size + val_size at most 2000"),
        (["--model", "resnet20", "--threads", "0"], "--threads must be positive, got 0"),
        # Misspelt, a flag of the command reaches the model-option and recipe-field reader.
        (["--model", "resnet20", "--thraeds", "2"], "unknown option --thraeds (did you mean --threads?); model options: "),
        (["--model", "resnet20", "--warmup-lrr", "0.01"], "unknown option --warmup-lrr (did you mean --warmup-lr?); model options: "),
        # search.run's way of giving a recipe field, given to a run, which takes each as a flag.
        (["--model", "resnet20", "--recipe", "warmup_lr=0.01"], "unknown option --recipe (did you mean --warmup-lr 0.01? each field is a flag of its own here); model options: "),
        (["--model", "resnet20", "--device", "tpu"], "valid: auto, cpu, cuda"),
        (["--model", "resnet20", "--device", "cdua"], "invalid choice 'cdua' (did you mean cuda?)"),
        (["--model", "timm:resnt10t"], "unknown timm model 'resnt10t' (did you mean resnet10t"),
        (["--model", "resnet20", "--lr", "nan"], "recipe field lr must be a finite number, got nan"),
        (["--model", "resnet20", "--momentum", "inf"], "recipe field momentum must be a finite number, got inf"),
        (["--model", "resnet20", "--weight-decay", "-inf"], "recipe field weight_decay must be a finite number"),
        (["--model", "resnet20", "--label-smoothing", "nan"], "recipe field label_smoothing must be a finite number"),
        (["--model", "resnet20", "--plugins", "no_such_module_xyz"], "error: cannot import plugin module 'no_such_module_xyz': No module named 'no_such_module_xyz'"),
        # (Which blocks the line lists as valid depends on what other tests in this process registered.)
        (["--model", "resnet20", "--block", "my_own_block"], "; a block of your own is known once the module registering it is imported (on a command line: --plugins MODULE)\n"),
        (["--model", "resnet20", "--momentum", "1.5"], "error: recipe field momentum must be below 1, got 1.5"),
        (["--model", "resnet20", "--label-smoothing", "1"], "error: recipe field label_smoothing must be below 1, got 1.0"),  # once named all three
        (["--model", "resnet20", "--train-subset", "10"], "train_subset 10 is smaller than batch_size 64"),
        (["--model", "resnet20", "--depth", "100004"], "to train at batch 64, over this run's share of the cpu memory"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    out = tmp_path / "out"
    full = [*args, "--out", str(out)]
    if "--data" not in args:
        full += ["--data", "synthetic"]
    if "--budget" not in args:
        full += ["--budget", "smoke"]
    try:
        status = main(full)
    except SystemExit as exited:  # argparse's choices (budget, device): the parser exits
        status = exited.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_folder_refused_once_loading_leaves_no_folder_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data" / "train" / "cats").mkdir(parents=True)  # a class folder with no images
    out = tmp_path / "runs" / "first"
    assert main(["--model", "resnet20", "--data", str(tmp_path / "data"), "--budget", "smoke", "--out", str(out)]) == 2
    assert "Found no valid file for the classes cats" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_validation_size_asked_for_is_the_one_carved(tmp_path: Path) -> None:
    # More than a tenth of the 4,000 synthetic images, which only a budget's carve is held to.
    assert main(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "1", "--val-size", "1000", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["splits"]["val"] == 1000 and summary["splits"]["test"] == 256


def test_block_options_follow_the_chosen_block(tmp_path: Path) -> None:
    args = ["--model", "resnet20", "--block", "bottleneck", "--depth", "29", "--base-width", "32", "--data", "synthetic", "--budget", "smoke", "--epochs", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model_overrides"] == {"block": "bottleneck", "depth": 29, "base_width": 32}


def test_cli_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    result = run_cli(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--depth", "22", "--out", str(tmp_path / "x")])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and not (tmp_path / "x").exists()


def test_a_full_disk_fails_in_one_line_and_the_same_command_resumes_naming_the_commits_that_trained_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "2", "--train-subset", "128", "--threads", "1", "--out", str(tmp_path)]
    monkeypatch.setenv("RESBENCH_FAULT", "disk_full_from_epoch:2")  # epoch 2's checkpoint cannot be written
    assert main(args) == 74
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "checkpoint.pt" in err and "run the same command to resume" in err
    state = torch.load(tmp_path / "checkpoint" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and len(pd.read_csv(tmp_path / "metrics.csv")) == 1  # epoch 1 is whole
    monkeypatch.delenv("RESBENCH_FAULT")  # space freed
    # The resuming process runs other code (a later commit), as a search resumed after a `git
    # pull` does; the commit is the code's, read at import, not the checkout's when the run ends.
    started_under = provenance.CODE_COMMIT
    monkeypatch.setattr(provenance, "CODE_COMMIT", "f" * 40)
    assert main(args) == 0
    assert "resuming" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["git_commit"] == started_under and summary["git_commits"] == [started_under, "f" * 40]


@pytest.mark.slow  # a subprocess stopped mid-epoch
def test_sigterm_checkpoints_at_a_step_and_the_resumed_run_is_bitwise_the_same(tmp_path: Path) -> None:
    import signal

    args = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "2", "--train-subset", "128", "--threads", "1"]
    # The uninterrupted reference runs here, in the test's process: same threads, same bits.
    train(TrialConfig(model="resnet20", data="synthetic", budget="smoke", recipe_overrides={"epochs": 2, "train_subset": 128}, threads=1), tmp_path / "whole", log=None)
    # Two steps an epoch; the run holds before global step 4 (epoch 2's second) until signalled.
    stalled = {**os.environ, "RESBENCH_FAULT": "stall_at_step:4"}
    with subprocess.Popen([sys.executable, "-m", "search.train", *args, "--out", str(tmp_path / "preempted")], cwd=REPO, env=stalled, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        assert job.stdout is not None and job.stderr is not None
        for line in job.stdout:  # preempt once epoch 2 is under way
            if line.startswith("epoch 1/2"):
                job.send_signal(signal.SIGTERM)
                break
        output = line + job.stdout.read()
        assert job.wait(timeout=120) == 75, job.stderr.read()[-2000:]
    assert "interrupted at epoch 2, step " in output and "run the same command to resume" in output
    assert not (tmp_path / "preempted" / "summary.json").exists()
    state = torch.load(tmp_path / "preempted" / "checkpoint" / "checkpoint.pt", weights_only=True)
    assert state["in_epoch"]["epoch"] == 2 and state["epoch"] == 1
    resumed = run_cli([*args, "--out", str(tmp_path / "preempted")])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"step {state['in_epoch']['step']} of epoch 2" in resumed.stdout
    expected = pd.read_csv(tmp_path / "whole" / "metrics.csv")[DETERMINISTIC_COLUMNS]
    got = pd.read_csv(tmp_path / "preempted" / "metrics.csv")[DETERMINISTIC_COLUMNS]
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.slow  # subprocesses stopped outside the training loop
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_after_the_training_loop_ends_the_run_as_interrupted_and_the_same_command_finishes_it(tmp_path: Path, signum: str) -> None:
    import signal

    args = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "1", "--train-subset", "128", "--threads", "1", "--out", str(tmp_path / "run")]
    # The run holds after its loop, before its final evaluation and summary: the window a
    # scheduler's SIGTERM (or a Ctrl-C) reaches when the last epoch has just been checkpointed.
    held = {**os.environ, "RESBENCH_FAULT": "stall_after_training:60"}
    with subprocess.Popen([sys.executable, "-m", "search.train", *args], cwd=REPO, env=held, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        assert job.stdout is not None and job.stderr is not None
        for line in job.stdout:
            if line.startswith("epoch 1/1"):
                job.send_signal(getattr(signal, signum))
                break
        status, err = job.wait(timeout=60), job.stderr.read()
    assert status == 75, err[-2000:]  # interrupted, as a stop within the loop ends: a scheduler requeues it
    assert err.strip().splitlines() == [f"{signum} outside the training loop (loading data or writing the summary): nothing is lost, the run goes on from its last checkpoint (or its start); run the same command to continue"]
    assert not (tmp_path / "run" / "summary.json").exists()
    assert torch.load(tmp_path / "run" / "checkpoint" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    if signum == "SIGINT":
        return  # the same state as after SIGTERM: its resume is shown once
    finished = run_cli(args)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "resuming run from epoch 1/1" in finished.stdout and "epoch 1/1 " not in finished.stdout  # not retrained
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def test_more_threads_than_cores_run_as_many_as_there_are_cores_and_say_so(tmp_path: Path) -> None:
    """A planned command carries the planning machine's --threads; on a smaller machine it still
    runs, on the cores it has (999 threads on 2 cores made a smoke run take minutes, not seconds)."""
    from search.train import available_cpus

    said: list[str] = []
    asked = available_cpus() + 3
    summary = train(TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"epochs": 1, "train_subset": 64}, threads=asked), tmp_path, log=said.append)
    assert f"--threads {asked}: this process may use {available_cpus()} CPU(s); running {available_cpus()} thread(s)" in said
    assert summary["status"] == "completed" and summary["threads"] == available_cpus()


def test_a_signal_the_loop_noted_after_its_last_look_is_passed_on_once_it_ends() -> None:
    """SIGTERM during the last epoch's evaluation is noted by the loop's handler, which will not
    look again: it goes on to the handler outside, not lost while the summary is written."""
    import signal

    from search.train import Preemption, StoppedOutsideTheLoop, stopped_anywhere

    with stopped_anywhere():
        preemption = Preemption()
        with preemption:
            signal.raise_signal(signal.SIGTERM)
        assert preemption.requested  # noted, not acted on
        with pytest.raises(StoppedOutsideTheLoop, match="SIGTERM"):
            preemption.pass_on()
        Preemption().pass_on()  # no signal: nothing to pass on


def test_saved_weights_classify_an_image_file_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from search.data import _decode_folder
    from zoo.__main__ import main as zoo_main

    data = tmp_path / "data"
    write_image_folder(data, "train", per_class=40)
    for label, name in enumerate(("red", "green", "blue")):
        (data / "train" / f"class{label}").rename(data / "train" / name)
    summary = train(smoke(data=str(data), val_size=12), tmp_path / "run", log=None)
    weights = tmp_path / "run" / "model_final.safetensors"
    # A user's photo: another size and format than the training files.
    pixels = torch.randint(0, 60, (48, 64, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    pixels[..., 0] += 180
    photo = tmp_path / "photos" / "x" / "photo.jpg"
    photo.parent.mkdir(parents=True)
    Image.fromarray(pixels.numpy()).save(photo, quality=90)
    assert zoo_main(["predict", str(weights), str(photo), "--top", "3"]) == 0
    printed = capsys.readouterr().out.strip()
    names_and_probabilities = [part.rsplit(" ", 1) for part in printed.split(": ", 1)[1].split(", ")]
    # The same file through the training pipeline's decoder and normalisation gives the same answer.
    model = zoo.load(weights)
    recipe = summary["recipe"]
    dataset = load_dataset(str(data), data_seed=0, val_size=recipe["val_size"], test_size=recipe["test_size"])
    assert model.zoo_data["class_names"] == ["blue", "green", "red"] and model.zoo_data["mean"] == list(dataset.mean)
    decoded, _ = _decode_folder(photo.parent.parent, 32)
    with torch.no_grad():
        reference = model.eval()(Normalize(dataset.mean, dataset.std, torch.device("cpu"), channels_last=False)(decoded.images)).softmax(1)[0]
    expected = [(dataset.classes[int(i)], float(reference[i])) for i in reference.argsort(descending=True)]
    assert [name for name, _ in names_and_probabilities] == [name for name, _ in expected]
    assert [float(p) for _, p in names_and_probabilities] == pytest.approx([p for _, p in expected], abs=1.5e-3)  # printed to 3 places


def test_predict_refuses_weights_without_a_data_description_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.__main__ import main as zoo_main

    zoo.save(zoo.create_model("resnet20"), tmp_path / "bare.safetensors")  # built by hand, never trained on data
    assert zoo_main(["predict", str(tmp_path / "bare.safetensors"), str(tmp_path / "missing.png")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "carries no data description" in error
    assert zoo_main(["predict", str(tmp_path / "nothing.safetensors"), "x.png"]) == 2
    assert "nothing.safetensors" in capsys.readouterr().err


def test_a_checkpoint_from_before_the_resolution_fields_resumes_when_the_run_keeps_their_defaults(tmp_path: Path) -> None:
    tiny = TINY
    path = checkpoint_after_one_epoch(tiny, tmp_path)
    state = torch.load(path, weights_only=True)
    for added in ("image_size", "augment", "lighting", "eval_resize", "eval_crop", "eval_crops", "data_path"):
        del state["config"]["recipe"][added]  # as an older version wrote it
    torch.save(state, path)
    # A run at another size is another run; this one, at the defaults, resumes it.
    bigger = TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"train_subset": 128, "image_size": 28}, threads=1)
    with pytest.raises(ValueError, match="holds a different run"):
        train(bigger, tmp_path, log=None)
    assert train(tiny, tmp_path, log=None)["status"] == "completed"
