"""The GPU campaign's runner in its dry-run mode: it plans and advances the first unfinished
item from whatever state the experiments are in, and publishes what it collected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from search.campaign import DRY_RUN_ITEMS, advance, campaign_state, main, next_item, publish
from search.planned import plan_experiment


def test_the_runner_takes_the_next_missing_item_from_the_given_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "campaign"
    first, second = DRY_RUN_ITEMS[0], DRY_RUN_ITEMS[1]
    assert next_item(root, DRY_RUN_ITEMS) is first and not any(state.planned for state in campaign_state(root, DRY_RUN_ITEMS))
    # A session with time for the first item only: it is planned, trained, collected.
    assert advance(root, (first,), "synthetic", jobs=2, device="cpu", seconds=300, say=lambda line: None) == [first.name]
    results = pd.read_csv(root / first.name / "results.csv")
    assert list(results["status"]) == ["completed", "completed"]
    assert next_item(root, DRY_RUN_ITEMS) is second
    # The second item planned by an earlier session that ran out of time: still next, with its progress.
    plan_experiment(second.space, **second.settings("synthetic", root / second.name, None))
    states = {state.item.name: state for state in campaign_state(root, DRY_RUN_ITEMS)}
    assert states[first.name].done and (states[second.name].planned, states[second.name].finished) == (2, 0)
    assert main(["status", "--dry-run", "--root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert f"{first.name}: done" in listing and f"{second.name}: 0/2 trials finished" in listing and listing.rstrip().endswith(f"next: {second.name}")
    # What it collected is published where `python -m leaderboards` renders it.
    written = publish(root, DRY_RUN_ITEMS, into=tmp_path / "leaderboards")
    assert {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written} >= {f"{first.name}/results.csv", f"{first.name}/search.json", f"{first.name}/curves.csv"}
    assert not (tmp_path / "leaderboards" / second.name).exists()  # planned, never collected


def test_run_without_a_gpu_or_with_bad_numbers_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--root", str(tmp_path / "c")]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
    assert main(["run", "--dry-run", "--minutes", "0", "--root", str(tmp_path / "c")]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
