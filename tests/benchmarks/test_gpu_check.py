"""The prepared GPU check, dry run: every step at a tiny size on the CPU, as CI can run it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a dozen subprocesses


def check(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path / "out"), "--experiment", str(tmp_path / "grid"), "--dry-run", *flags]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_dry_run_measures_every_step_and_a_second_run_continues_the_grid(tmp_path: Path) -> None:
    first = check(tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    out = tmp_path / "out"
    environment = json.loads((out / "environment.json").read_text())
    assert environment["dry_run"] and environment["device"] == "cpu"
    throughput = pd.read_csv(out / "throughput.csv")
    assert list(throughput["mode"]) == ["bare loop bf16", "eager fp32", "eager bf16", "compiled bf16 (aot_eager)"]
    assert (throughput["images_per_second"] > 0).all() and throughput["compile_seconds"].iloc[-1] > 0
    packing = pd.read_csv(out / "packing.csv")
    assert list(packing["trials"]) == [1, 2] and (packing["aggregate_images_per_second"] > 0).all()
    results = pd.read_csv(tmp_path / "grid" / "results.csv")
    assert list(results["status"]) == ["completed", "completed"]
    quick = pd.read_csv(out / "quick_recipe.csv")
    assert list(quick["trial_id"]) == ["trial_0000"]  # the ResNet-20 (A) trial
    assert "## The shortcuts grid" in (out / "check.md").read_text()
    summaries = {p.parent.name: p.stat().st_mtime for p in (tmp_path / "grid" / "trials").glob("*/summary.json")}

    second = check(tmp_path, "--steps", "grid", "--bundle", str(tmp_path / "back"))  # finished trials are not run again
    assert second.returncode == 0, second.stderr[-2000:]
    assert "2 of 2 planned trials finished; running 0" in second.stdout
    assert {p.parent.name: p.stat().st_mtime for p in (tmp_path / "grid" / "trials").glob("*/summary.json")} == summaries
    parts = sorted((tmp_path / "back").iterdir())  # what a device brings back
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as archive:
        names = set(archive.getnames())
    assert {"check/check.md", "experiment/results.csv", "experiment/trials/trial_0000/summary.json", "experiment/trials/trial_0000/model_final.safetensors"} <= names


def test_an_unknown_step_is_one_line(tmp_path: Path) -> None:
    result = check(tmp_path, "--steps", "grid,warp")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown step 'warp'; valid: throughput, packing, grid"
    assert not (tmp_path / "out").exists()
