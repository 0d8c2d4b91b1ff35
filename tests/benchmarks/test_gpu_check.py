"""The prepared GPU check, dry run: every step at a tiny size on the CPU, as CI can run it."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import gpu_check
from search.data import load_dataset

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # subprocesses: the check, its packed trials, the planned commands


def check(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path / "out"), "--experiment", str(tmp_path / "grid"), "--dry-run", *flags]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_dry_run_measures_every_step_and_bundles_what_a_device_brings_back(tmp_path: Path) -> None:
    # (A second run continuing the grid is run_planned skipping finished trials: tests/search/test_planned.py.)
    result = check(tmp_path, "--bundle", str(tmp_path / "back"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = tmp_path / "out"
    environment = json.loads((out / "environment.json").read_text())
    assert environment["dry_run"] and environment["device"] == "cpu"
    assert environment["shared_memory_gib"] is None or environment["shared_memory_gib"] > 0  # None: no /dev/shm
    throughput = pd.read_csv(out / "throughput.csv")
    assert list(throughput["mode"]) == ["bare loop bf16", "eager fp32", "eager bf16", "eager bf16 deterministic", "compiled bf16 (aot_eager)"]
    assert (throughput["images_per_second"] > 0).all() and throughput["compile_seconds"].iloc[-1] > 0
    packing = pd.read_csv(out / "packing.csv")
    assert list(packing["trials"]) == [1, 2] and (packing["aggregate_images_per_second"] > 0).all()
    decoded = pd.read_csv(out / "decode.csv")  # the CPU side only: nvJPEG needs the device
    assert list(decoded["images"]) == [16] * 3 and (decoded["images_per_second"] > 0).all()
    assert decoded["decoder"].iloc[0].endswith("CPU loader worker(s) (torchvision.io.decode_jpeg)")
    assert [decoder.split(", ")[1].split(" (")[0] for decoder in decoded["decoder"].iloc[1:]] == ["--decode workers", "--decode device"]
    resumed = pd.read_csv(out / "resume.csv")  # killed after epoch 1, resumed: on the CPU bitwise the uninterrupted run, with either kernels
    assert list(resumed["kernels"]) == ["default", "default", "deterministic", "deterministic"] and list(resumed["epoch"]) == [1, 2, 1, 2]
    assert (resumed["val_accuracy_difference"] == 0).all() and (resumed["train_loss_relative_difference"] == 0).all()
    results = pd.read_csv(tmp_path / "grid" / "results.csv")
    assert list(results["status"]) == ["completed", "completed"]
    quick = pd.read_csv(out / "quick_recipe.csv")
    assert list(quick["trial_id"]) == ["trial_0000"]  # the ResNet-20 (A) trial
    assert "## The shortcuts grid" in (out / "check.md").read_text()
    parts = sorted((tmp_path / "back").iterdir())  # what a device brings back
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as archive:
        names = set(archive.getnames())
        [check_md] = [name for name in names if name.endswith("/check.md")]
        bundled_check = archive.extractfile(check_md).read().decode()
    # Bundled after every step (a kill still brings back what finished): the last, after the grid.
    assert bundled_check == (out / "check.md").read_text()
    # Paths from the repository root: the tables in a folder of this check's own (named by its
    # start), the grid where it was, or (outside the repository, as here) beside the tables.
    [tables] = {name.split("/")[2] for name in names if name.endswith("/check.md")}
    assert re.fullmatch(r"\d{8}T\d{6}Z", tables)
    check_folder, grid = f"experiments/gpu-check/{tables}", f"experiments/gpu-check/{tables}-grid"
    assert {f"{check_folder}/check.md", f"{grid}/results.csv", f"{grid}/trials/trial_0000/summary.json", f"{grid}/trials/trial_0000/model_final.safetensors"} <= names
    assert all(name.startswith((f"{check_folder}/", f"{grid}/")) for name in names)
    assert not any("checkpoint" in name for name in names)


def test_compiled_rows_wait_for_the_eager_ones_and_never_eat_the_later_steps_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The check is already past its first 40% when the step starts (its clock set back, so the
    # verdict does not hang on this machine's speed, as a 12-second run of the whole check did):
    # the eager rows, measured first, are all there; the compiled row is left out and said so.
    # (A second model, as the GPU's ResNet-56, has no deterministic row: ResNet-20's says what the option costs.)
    clock = gpu_check.Clock(10.0)
    clock.start -= 0.45 * clock.limit
    dataset = load_dataset("synthetic", data_seed=0)
    two_models = dataclasses.replace(gpu_check.DRY_RUN, models=(("resnet20", {"depth": 8}), ("cifar_vgg11", {})))
    gpu_check.throughput(two_models, dataset, clock, tmp_path)
    throughput = pd.read_csv(tmp_path / "throughput.csv")
    assert list(throughput["model"]) == ["resnet20"] * 4 + ["cifar_vgg11"] * 3
    assert list(throughput["mode"]) == ["bare loop bf16", "eager fp32", "eager bf16", "eager bf16 deterministic", "bare loop bf16", "eager fp32", "eager bf16"]
    assert "resnet20 batch 32 compiled not measured: a compile takes up to 5 s here, past the check's first 40%" in capsys.readouterr().out


def test_a_failed_compile_keeps_the_eager_rows_and_their_ratios(tmp_path: Path) -> None:
    # A card's image without what Inductor needs fails the compiled row; the eager ones, measured
    # first, are written whole, with their ratios to the bare loop, and the step says it failed.
    scale = dataclasses.replace(gpu_check.DRY_RUN, compile_mode="no-such-mode")
    dataset = load_dataset("synthetic", data_seed=0)
    with pytest.raises(ValueError, match="unknown compile mode 'no-such-mode'"):
        gpu_check.throughput(scale, dataset, gpu_check.Clock(1.0), tmp_path)
    throughput = pd.read_csv(tmp_path / "throughput.csv")
    assert list(throughput["mode"]) == ["bare loop bf16", "eager fp32", "eager bf16", "eager bf16 deterministic"]
    assert throughput["vs_bare_loop"].iloc[0] == 1.0 and (throughput["vs_bare_loop"] > 0).all()


def test_a_resume_pair_that_fails_leaves_the_other_pairs_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The deterministic pair is new on CUDA: if its runs fail there, the default pair's figures
    # must still come back. Here a kernel choice whose runs are refused (exit 2) stands in for it.
    monkeypatch.setitem(gpu_check.RESUME_KERNELS, "refused", ["--lr", "nan"])
    with pytest.raises(RuntimeError, match="^refused kernels: the run killed after epoch 1 exited 2, not 3: error: recipe field lr must be a finite number"):
        gpu_check.resume(gpu_check.DRY_RUN, "synthetic", gpu_check.Clock(5.0), tmp_path)
    resumed = pd.read_csv(tmp_path / "resume.csv")
    assert list(resumed["kernels"]) == ["default", "default", "deterministic", "deterministic"] and (resumed["val_accuracy_difference"] == 0).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--steps", "throughput,nope"], f"error: unknown step 'nope'; valid: {', '.join(gpu_check.STEPS)}"),
        (["--minutes", "-1"], "error: --minutes must be a positive number, got -1.0"),  # once: a run that measured nothing
        (["--minutes", "nan"], "error: --minutes must be a positive number, got nan"),
        (["--minutes", "soon"], "error: argument --minutes: invalid float value: 'soon'"),
        (["--minuets", "5"], "error: unrecognized arguments: --minuets 5 (did you mean --minutes?)"),  # once argparse's usage block
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(gpu_check.main(["--out", str(tmp_path / "out"), "--dry-run", *flags]))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert not any(tmp_path.iterdir())


def test_an_output_folder_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("a file in the way")
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path / "check"), "--bundle", str(tmp_path / "taken" / "back")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--bundle {tmp_path / 'taken' / 'back'}: {tmp_path / 'taken'} is a file, not a folder" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]
