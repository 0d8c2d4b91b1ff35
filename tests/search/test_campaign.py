"""The GPU campaign's runner in its dry-run mode: it plans and advances the first unfinished
item from whatever state the experiments are in, and publishes what it collected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leaderboards._probes import write_probe_page
from search.campaign import DRY_RUN_ITEMS, ProbeItem, advance, campaign_state, main, next_item, publish
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


def test_probe_items_wait_for_their_grid_then_probe_its_nets_one_by_one_and_publish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "campaign"
    depth = next(item for item in DRY_RUN_ITEMS if item.name == "depth")
    probes = tuple(item for item in DRY_RUN_ITEMS if isinstance(item, ProbeItem))
    assert [item.probe for item in probes] == ["responses", "lesion"] and {item.source for item in probes} == {"depth"}
    items = (depth, *probes)
    # Before the grid is done there is nothing to probe: the items wait, and the grid is next.
    assert main(["status", "--dry-run", "--root", str(root)]) == 0
    assert "depth-responses: waits for depth" in capsys.readouterr().out
    assert advance(root, probes, "synthetic", jobs=1, device="cpu", seconds=60, say=lambda line: None) == []
    # One session trains the grid's two nets and probes them.
    assert advance(root, items, "synthetic", jobs=2, device="cpu", seconds=300, say=lambda line: None) == ["depth", "depth-responses", "depth-lesion"]
    states = campaign_state(root, items)
    assert all(state.done for state in states) and [(s.planned, s.finished) for s in states[1:]] == [(2, 2), (2, 2)]
    responses = pd.read_csv(root / "depth-responses" / "responses.csv")
    assert list(dict.fromkeys(responses["run"])) == ["trial_0000", "trial_0001"] and (responses["images"] == 8).all()
    lesion = pd.read_csv(root / "depth-lesion" / "lesion.csv")
    assert set(lesion["run"]) == {"trial_0000", "trial_0001"} and lesion["accuracy"].notna().any()
    # A later session finds nothing left; publishing puts each table where its page is rendered from.
    assert advance(root, items, "synthetic", jobs=2, device="cpu", seconds=60, say=lambda line: None) == []
    written = publish(root, items, into=tmp_path / "leaderboards")
    assert {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written} >= {"responses/responses.csv", "responses/probe.json", "lesion/lesion.csv", "lesion/probe.json"}
    assert write_probe_page(tmp_path / "leaderboards" / "responses" / "responses.csv", tmp_path / "pages").path.exists()
