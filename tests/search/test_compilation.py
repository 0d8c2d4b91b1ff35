"""torch.compile as an execution setting: same losses as eager, resumes across modes, no
recompiles once warm, compile time accounted apart.

The logic runs on the ``aot_eager`` backend (forward and backward traced as compile does, run
eagerly: seconds on a CPU); one test runs Inductor itself, on a tiny net.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from search.compilation import COMPILE_MODES, graphs_compiled, seconds_compiling
from search.config import TrialConfig
from search.data import load_dataset
from search.testing import Faults
from search.train import Preemption, ProgressBar, Run, main, train

# A depth-8 ResNet, 2 steps per epoch; 100 validation images in batches of 64 leave a ragged
# last batch, which must not compile a graph of its own.
TINY = {"train_subset": 128, "val_size": 100, "test_size": 64, "eval_batch_size": 64}
LOSSES = ["epoch", "train_loss", "train_error", "val_accuracy"]


def tiny(compile: str = "off", epochs: int = 3) -> TrialConfig:
    return TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={**TINY, "epochs": epochs}, threads=1, compile=compile)


class StopAfter(Exception):
    pass


def test_eager_and_compiled_resume_each_other_match_eager_losses_and_never_recompile_once_warm(tmp_path: Path) -> None:
    """One run, three executions: epoch 1 eager, epochs 2-3 compiled (resumed from the eager
    checkpoint), epoch 4 eager again (resumed from the compiled one); its losses are those of an
    uninterrupted eager run."""
    eager = train(tiny(epochs=4), tmp_path / "eager", log=None)
    graphs: list[int] = []

    def stop_after(last: int) -> Callable[[dict], None]:
        def report(row: dict) -> None:
            graphs.append(graphs_compiled())
            if row["epoch"] == last:
                raise StopAfter  # the checkpoint of this epoch is on disk
        return report

    with pytest.raises(StopAfter):
        train(tiny("off", epochs=4), tmp_path / "mixed", log=None, report=stop_after(1))
    with pytest.raises(StopAfter):
        train(tiny("aot_eager", epochs=4), tmp_path / "mixed", log=None, report=stop_after(3))
    # Epoch 2 compiled the training and the evaluation graph; epoch 3 (a full epoch, and an
    # evaluation ending in a ragged batch) compiled nothing more.
    assert graphs[2] == graphs[1] > graphs[0]
    finished = train(tiny("off", epochs=4), tmp_path / "mixed", log=None)
    assert finished["status"] == "completed" and finished["compile"] == "off"
    assert finished["compile_seconds"] > 0  # spent by the compiled part, kept by the checkpoint
    assert eager["compile_seconds"] == 0
    expected = pd.read_csv(tmp_path / "eager" / "metrics.csv")[LOSSES]
    metrics = pd.read_csv(tmp_path / "mixed" / "metrics.csv")
    pd.testing.assert_frame_equal(metrics[LOSSES], expected, rtol=1e-4)
    assert finished["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=1 / 64)
    # Training seconds and compile seconds are disjoint parts of the wall time (counted twice,
    # they would add up to more than it).
    assert metrics["seconds"].sum() + finished["compile_seconds"] <= finished["wall_seconds"]


def test_inductor_compiled_training_steps_give_the_eager_loss() -> None:
    # The training graph only (forward and backward, the costly compile): the loop's own epoch.
    dataset = load_dataset("synthetic", data_seed=0, val_size=64, test_size=64)
    losses = []
    for mode in ("off", "default"):
        config = tiny(mode, epochs=1)
        run = Run.build(config, config.recipe(), dataset, torch.device("cpu"), "fp32")
        compiling = seconds_compiling()
        result = run.train_epoch(1, Faults(), ProgressBar(False), None, Preemption())
        losses.append((result.train_loss, result.train_error))
        assert (seconds_compiling() > compiling) == (mode != "off")
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


def test_an_unknown_compile_mode_is_one_line_naming_the_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--compile", "fast", "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: unknown compile mode 'fast'; valid: {', '.join(COMPILE_MODES)}"
    assert not (tmp_path / "run").exists()
