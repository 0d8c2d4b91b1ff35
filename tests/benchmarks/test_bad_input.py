"""The benchmarks that read a data folder refuse a bad one as every ResBench command does: one
line naming it, exit status 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["first_decode", "quick_recipe", "train_throughput", "worker_start"])
def test_a_missing_data_folder_is_one_line_and_exit_2(script: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    result = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--data", str(missing)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and str(missing) in result.stderr and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
