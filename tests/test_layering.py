"""The folders' layering, checked in fresh processes: zoo imports nothing above it; leaderboards
never imports search, Ray or Optuna; training and page generation run where Ray and Optuna are
not installed at all (GPU machines often have neither)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Makes `import ray` / `import optuna` fail as they would where the packages are not installed.
WITHOUT_RAY_AND_OPTUNA = (
    "import sys\n"
    "class Missing:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('ray', 'optuna'):\n"
    "            raise ImportError(f'No module named {name!r} (blocked by the layering test)')\n"
    "sys.meta_path.insert(0, Missing())\n"
)


# complexity.md names the torch that counted the zoo; on another torch (.ci/lowest-versions runs
# this test at the floors) every count must come out the same, and only that name differs.
COUNTED_WITH = re.compile(r"torch [^ ,]+, without training")


def run_python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


LAYERS = {
    "zoo": ("search", "leaderboards", "timm", "ray", "optuna"),
    "leaderboards": ("search", "ray", "optuna"),
    "search.train": ("ray", "optuna", "leaderboards"),
    "search.run": ("ray", "optuna"),
    "search.campaign": ("ray", "optuna"),
}


def test_imports_stay_in_their_layer() -> None:
    # One fresh process per module (what one imports would hide what another does), all at once.
    running = {}
    for module, forbidden in LAYERS.items():
        code = f"import sys, {module}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))"
        running[module] = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for module, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == "[]", f"importing {module} imported {out.strip()}"


@pytest.mark.slow
def test_training_runs_without_ray_and_optuna(tmp_path: Path) -> None:
    argv = ["search.train", "--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--epochs", "1", "--train-subset", "128", "--out", str(tmp_path / "run")]
    code = WITHOUT_RAY_AND_OPTUNA + f"import runpy\nsys.argv = {argv!r}\nrunpy.run_module('search.train', run_name='__main__')\n"
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_pages_regenerate_without_ray_and_optuna_and_reproduce_the_committed_ones(tmp_path: Path) -> None:
    code = WITHOUT_RAY_AND_OPTUNA + f"import runpy\nsys.argv = ['leaderboards', '--out', {str(tmp_path)!r}]\nrunpy.run_module('leaderboards', run_name='__main__')\n"
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "README.md").exists() and (tmp_path / "shortcuts.md").exists()
    for page in sorted(tmp_path.glob("*.md")):
        regenerated, committed = (COUNTED_WITH.sub("torch VERSION, without training", path.read_text()) for path in (page, REPO / "leaderboards" / page.name))
        assert regenerated == committed, f"{page.name} differs from the committed page: run python -m leaderboards"
    complexity = (tmp_path / "complexity.md").read_text()
    assert f"torch {torch.__version__.split('+')[0]}, without training" in complexity, "complexity.md names the torch that counted it"
    assert "resnet1202" in complexity and "**holds**" in complexity
    assert re.search(r"from the zoo at commit ([0-9a-f]{12}|unknown)", complexity), "complexity.md names the commit it was counted from"
