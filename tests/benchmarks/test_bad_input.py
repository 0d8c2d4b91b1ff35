"""The benchmarks refuse bad input as every ResBench command does: one line naming the bad value,
exit status 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MISSING = "no-such-data"  # a folder under the test's empty tmp_path


@pytest.mark.parametrize(("script", "words"), [
    ("first_decode", ["--data", MISSING]),
    ("quick_recipe", ["--data", MISSING]),
    ("train_throughput", ["--data", MISSING]),
    ("worker_start", ["--data", MISSING]),
    ("search_overhead", ["--data", MISSING]),
    ("data_stream", ["--sizes", "64,abc"]),
    ("path_list_memory", ["--workers", "0"]),
])
def test_bad_input_is_one_line_and_exit_2(script: str, words: list[str], tmp_path: Path) -> None:
    words = [str(tmp_path / word) if word == MISSING else word for word in words]
    result = subprocess.run([sys.executable, f"benchmarks/{script}.py", *words], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and words[1] in result.stderr and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
