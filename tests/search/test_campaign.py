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
    # The campaign's probes wait for the depth grid; here the same probes of the first item's nets
    # (trained once for the whole test) wait for it, then probe its two nets.
    assert [(item.probe, item.source) for item in DRY_RUN_ITEMS if isinstance(item, ProbeItem)] == [("responses", "depth"), ("lesion", "depth")]
    probes = tuple(ProbeItem(f"{first.name}-{item.probe}", item.probe, first.name, item.why, images=8, draws=1) for item in DRY_RUN_ITEMS if isinstance(item, ProbeItem))
    assert advance(root, probes, "synthetic", jobs=1, device="cpu", seconds=60, say=lambda line: None) == []
    assert [state.describe().split(" (")[0] for state in campaign_state(root, (first, *probes))][1:] == [f"{first.name}-responses: waits for {first.name}", f"{first.name}-lesion: waits for {first.name}"]
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
    # The probes, now that their grid is done: both nets each, then nothing left for a later session.
    assert advance(root, (first, *probes), "synthetic", jobs=1, device="cpu", seconds=300, say=lambda line: None) == [item.name for item in probes]
    assert [(state.planned, state.finished, state.done) for state in campaign_state(root, (first, *probes))[1:]] == [(2, 2, True), (2, 2, True)]
    responses, lesion = (pd.read_csv(root / item.name / f"{item.probe}.csv") for item in probes)
    assert list(dict.fromkeys(responses["run"])) == ["trial_0000", "trial_0001"] and (responses["images"] == 8).all()
    assert set(lesion["run"]) == {"trial_0000", "trial_0001"} and lesion["accuracy"].notna().any()
    assert advance(root, (first, *probes), "synthetic", jobs=1, device="cpu", seconds=60, say=lambda line: None) == []
    written = publish(root, probes, into=tmp_path / "leaderboards")
    assert {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written} == {"responses/responses.csv", "responses/probe.json", "lesion/lesion.csv", "lesion/probe.json"}
    assert write_probe_page(tmp_path / "leaderboards" / "responses" / "responses.csv", tmp_path / "pages").path.exists()


def test_run_without_a_gpu_or_with_bad_numbers_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--root", str(tmp_path / "c")]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
    assert main(["run", "--dry-run", "--minutes", "0", "--root", str(tmp_path / "c")]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
