"""torch.compile as an execution setting: same losses as eager, resumes across modes, no
recompiles once warm, compile time accounted apart.

The logic runs on the ``aot_eager`` backend (forward and backward traced as compile does, run
eagerly: seconds on a CPU); one test runs Inductor itself, on a tiny net.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from search.compilation import COMPILE_MODES, graphs_compiled
from search.config import TrialConfig
from search.train import main, train

# A depth-8 ResNet, 2 steps per epoch; 100 validation images in batches of 64 leave a ragged
# last batch, which must not compile a graph of its own.
TINY = {"train_subset": 128, "val_size": 100, "test_size": 64, "eval_batch_size": 64}
LOSSES = ["epoch", "train_loss", "train_error", "val_accuracy"]


def tiny(compile: str = "off", epochs: int = 3) -> TrialConfig:
    return TrialConfig(model="resnet20", data="synthetic", budget="smoke", model_overrides={"depth": 8}, recipe_overrides={**TINY, "epochs": epochs}, threads=2, compile=compile)


class StopAfter(Exception):
    pass


def test_compiled_run_matches_eager_resumes_eagerly_and_never_recompiles_once_warm(tmp_path: Path) -> None:
    eager = train(tiny(), tmp_path / "eager", log=None)
    graphs: list[int] = []

    def report(row: dict) -> None:
        graphs.append(graphs_compiled())
        if row["epoch"] == 2:
            raise StopAfter  # the checkpoint of epoch 2 is on disk

    with pytest.raises(StopAfter):
        train(tiny("aot_eager"), tmp_path / "mixed", log=None, report=report)
    # Epoch 1 compiled the training graph and the evaluation graph; epoch 2 (a full epoch, and an
    # evaluation ending in a ragged batch) compiled nothing more.
    assert graphs[1] == graphs[0]
    finished = train(tiny("off"), tmp_path / "mixed", log=None)  # the compiled run's checkpoint, resumed eagerly
    assert finished["status"] == "completed" and finished["compile"] == "off"
    assert finished["compile_seconds"] > 0  # spent before the resume, kept by the checkpoint
    expected = pd.read_csv(tmp_path / "eager" / "metrics.csv")[LOSSES]
    got = pd.read_csv(tmp_path / "mixed" / "metrics.csv")[LOSSES]
    pd.testing.assert_frame_equal(got, expected, rtol=1e-4)
    assert finished["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=1 / 64)
    assert eager["compile_seconds"] == 0


def test_an_eager_checkpoint_resumes_compiled_and_compile_time_stays_out_of_images_per_second(tmp_path: Path) -> None:
    def stop_after_first(row: dict) -> None:
        raise StopAfter

    with pytest.raises(StopAfter):
        train(tiny(epochs=2), tmp_path, log=None, report=stop_after_first)
    summary = train(tiny("aot_eager", epochs=2), tmp_path, log=None)
    assert summary["status"] == "completed" and summary["compile"] == "aot_eager"
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    # Epoch 2 paid for compiling its graphs. Training seconds and compile seconds are disjoint
    # parts of the wall time (counted twice, they would add up to more than it).
    assert summary["compile_seconds"] > 0
    assert metrics["seconds"].sum() + summary["compile_seconds"] <= summary["wall_seconds"]


def test_inductor_compiled_training_gives_the_eager_losses(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "eager", log=None)
    summary = train(tiny("default", epochs=1), tmp_path / "inductor", log=None)
    assert summary["status"] == "completed" and summary["compile_seconds"] > 0
    expected = pd.read_csv(tmp_path / "eager" / "metrics.csv")[LOSSES]
    got = pd.read_csv(tmp_path / "inductor" / "metrics.csv")[LOSSES]
    pd.testing.assert_frame_equal(got, expected, rtol=1e-3)


def test_an_unknown_compile_mode_is_one_line_naming_the_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--compile", "fast", "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: unknown compile mode 'fast'; valid: {', '.join(COMPILE_MODES)}"
    assert not (tmp_path / "run").exists()
