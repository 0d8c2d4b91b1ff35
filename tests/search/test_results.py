"""The results table: rows from trials, written atomically, identifiers kept as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboards import load_results
from leaderboards.schema import read_table
from search.results import read_results, result_row, write_curves, write_results

NUMERIC_LOOKING_IDS = ["00001234", "92626976", "123e4567", "1e10", "abc0def1"]


def row(trial_id: str, shortcut: str, seed: int) -> dict:
    config = {"model": "resnet20", "shortcut": shortcut, "depth": 20, "seed": seed}
    metrics = {"status": "completed", "epoch": 2, "val_accuracy": 0.5, "architecture": '{"block": "basic", "depth": 20, "shortcut": "%s"}' % shortcut}
    return result_row("shortcuts", trial_id, config, metrics, None)


@pytest.mark.parametrize("ids", [NUMERIC_LOOKING_IDS, ["00001234"], ["92626976"], ["123e4567"]])
def test_trial_ids_that_look_like_numbers_stay_text(tmp_path: Path, ids: list[str]) -> None:
    write_results(tmp_path, [row(trial_id, "A", 0) for trial_id in ids])
    back = [r["trial_id"] for r in read_results(tmp_path)]
    assert back == sorted(ids) and all(isinstance(value, str) for value in back)
    assert list(load_results(tmp_path)["trial_id"]) == sorted(ids)
    # merging with a running search's string ids sorts, as a resume does
    merged = {r["trial_id"]: r for r in read_results(tmp_path)}
    merged["ffff0000"] = row("ffff0000", "B", 1)
    write_results(tmp_path, list(merged.values()))
    assert [r["trial_id"] for r in read_results(tmp_path)] == sorted([*ids, "ffff0000"])


def test_a_trial_that_never_reported_is_described_from_its_configuration() -> None:
    failed = result_row("shortcuts", "t1", {"model": "resnet20", "shortcut": "none", "depth": 56, "seed": 2}, {}, "Traceback...\nRuntimeError: boom")
    assert (failed["status"], failed["error"], failed["depth"], failed["shortcut"]) == ("failed", "RuntimeError: boom", 56, "none")
    assert failed["params"] > 0 and failed["config_shortcut"] == "none" and failed["seed"] == 2


def test_parquet_beside_the_csv_has_the_json_columns_nested(tmp_path: Path) -> None:
    import pandas as pd

    rows = [row("a1", "A", 0), row("b2", "B", 1)]
    rows[0]["recipe"] = '{"epochs": 2, "lr": 0.1, "milestones": [0.5, 0.75]}'
    rows[1]["recipe"] = '{"epochs": 2, "lr": 0.2, "milestones": [0.5, 0.75]}'
    write_results(tmp_path, rows)
    table = pd.read_parquet(tmp_path / "results.parquet")
    csv = load_results(tmp_path)
    assert list(table["trial_id"]) == list(csv["trial_id"]) and list(table.columns) == list(csv.columns)
    assert table["recipe"].iloc[1]["lr"] == 0.2 and list(table["recipe"].iloc[0]["milestones"]) == [0.5, 0.75]
    assert list(table["val_accuracy"]) == list(csv["val_accuracy"])


def test_curves_follow_a_trials_metrics_as_they_grow_and_skip_a_trial_with_none(tmp_path: Path) -> None:
    # The driver rewrites curves.csv at each trial's end and parses a metrics.csv again only when
    # it changed: a resumed trial's new epochs must still reach the table.
    first = tmp_path / "trials" / "trial_0000"
    first.mkdir(parents=True)
    (tmp_path / "trials" / "trial_0001").mkdir()  # started, no epoch finished yet
    (first / "metrics.csv").write_text("epoch,val_accuracy\n1,0.5\n")
    write_curves(tmp_path, ["trial_0000", "trial_0001"])
    assert read_table(tmp_path / "curves.csv")[["trial_id", "epoch"]].values.tolist() == [["trial_0000", 1]]
    (first / "metrics.csv").write_text("epoch,val_accuracy\n1,0.5\n2,0.75\n")  # resumed: one more epoch
    (tmp_path / "trials" / "trial_0001" / "metrics.csv").write_text("epoch,val_accuracy\n1,0.25\n")
    write_curves(tmp_path, ["trial_0000", "trial_0001"])
    curves = read_table(tmp_path / "curves.csv")
    assert curves[["trial_id", "epoch", "val_accuracy"]].values.tolist() == [["trial_0000", 1, 0.5], ["trial_0000", 2, 0.75], ["trial_0001", 1, 0.25]]
