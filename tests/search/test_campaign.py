"""The GPU campaign's runner in its dry-run mode: it plans and advances the first unfinished
item from whatever state the experiments are in, and publishes what it collected."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import optuna
import pandas as pd
import pytest

from leaderboards import write_page
from leaderboards._probes import write_probe_page
from leaderboards.schema import read_table
from search.campaign import CAMPAIGN, DRY_RUN_ITEMS, ProbeItem, advance, campaign_state, main, next_item, publish
from search.planned import collect, plan_experiment
from search.probe import finished_run
from search.study import study_storage


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
    # What it collected is published where `python -m leaderboards` renders it, beside the CPU
    # page of the same name (leaderboards/shortcuts/), never over it.
    written = publish(root, DRY_RUN_ITEMS, into=tmp_path / "leaderboards")
    assert {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written} >= {f"{first.name}-gpu/results.csv", f"{first.name}-gpu/search.json", f"{first.name}-gpu/curves.csv"}
    assert sorted(path.name for path in (tmp_path / "leaderboards").iterdir()) == [f"{first.name}-gpu"]  # the second: planned, never collected
    # A root that holds no campaign (a bundle unpacked elsewhere) is named, not published silently.
    assert main(["publish", "--root", str(tmp_path / "elsewhere")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --root {tmp_path / 'elsewhere'}: no campaign there; a bundle unpacked at the repository root puts it in experiments/campaign")
    assert not (tmp_path / "elsewhere").exists()
    # A dry run's publish stays in its own root: its tiny tables never reach the repository's pages.
    assert main(["publish", "--dry-run", "--root", str(root)]) == 0
    assert {Path(line).relative_to(root / "leaderboards").as_posix() for line in capsys.readouterr().out.split()} == {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written}
    # The probes, now that their grid is done: both nets each, then nothing left for a later session.
    assert advance(root, (first, *probes), "synthetic", jobs=1, device="cpu", seconds=300, say=lambda line: None) == [item.name for item in probes]
    assert [(state.planned, state.finished, state.done) for state in campaign_state(root, (first, *probes))[1:]] == [(2, 2, True), (2, 2, True)]
    responses, lesion = (pd.read_csv(root / item.name / f"{item.probe}.csv") for item in probes)
    assert list(dict.fromkeys(responses["run"])) == ["trial_0000", "trial_0001"] and (responses["images"] == 8).all()
    assert set(lesion["run"]) == {"trial_0000", "trial_0001"} and lesion["accuracy"].notna().any()
    # Each probe names what trained every net it holds, by the net's folder in the campaign.
    trained = json.loads((root / probes[0].name / "probe.json").read_text())["trained"]
    assert [run["run"] for run in trained] == [f"{first.name}/trials/trial_0000", f"{first.name}/trials/trial_0001"]
    assert trained[0]["git_commit"] == finished_run(root / trained[0]["run"])["git_commit"]
    assert advance(root, (first, *probes), "synthetic", jobs=1, device="cpu", seconds=60, say=lambda line: None) == []
    written = publish(root, probes, into=tmp_path / "leaderboards")
    assert {p.relative_to(tmp_path / "leaderboards").as_posix() for p in written} == {"responses-gpu/responses.csv", "responses-gpu/probe.json", "lesion-gpu/lesion.csv", "lesion-gpu/probe.json"}
    page = write_probe_page(tmp_path / "leaderboards" / "responses-gpu" / "responses.csv", tmp_path / "pages", name="responses-gpu")  # as `python -m leaderboards` names it
    assert page.path.name == "responses-gpu.md" and "![response std by layer, in network order and sorted](responses-gpu-by-layer.png)" in page.path.read_text()
    assert sorted(path.name for path in (tmp_path / "pages").iterdir()) == ["responses-gpu-by-layer.png", "responses-gpu.md"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "no CUDA device here; the campaign runs on a GPU machine (--dry-run runs it on the CPU)"),
        (["run", "--dry-run", "--minutes", "0"], "--minutes must be a positive number, got 0.0"),
        (["run", "--dry-run", "--minutes", "nan"], "--minutes must be a positive number, got nan"),  # once: a run with no end
        (["run", "--dry-run", "--jobs", "0"], "--jobs must be 1 or more, got 0"),
        # Once ignored without a word: `status --minutes 3` looked like it had been heard.
        (["status", "--minutes", "3"], "--minutes applies only to run; status takes --root and --dry-run"),
        (["publish", "--dry-run", "--bundle", "back"], "--bundle applies only to run; publish takes --root and --dry-run"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main([*args, "--root", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not any(tmp_path.iterdir())


def test_a_run_brings_back_its_campaign_as_a_bundle_unpacked_where_status_looks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, back = tmp_path / "campaign", tmp_path / "back"
    assert main(["run", "--dry-run", "--root", str(root), "--minutes", "0.25", "--bundle", str(back)]) == 0
    first = DRY_RUN_ITEMS[0].name
    assert f"advanced: {first}" in capsys.readouterr().out
    unpacked = tmp_path / "repository"
    with tarfile.open(fileobj=io.BytesIO(b"".join(part.read_bytes() for part in sorted(back.glob("bundle.tar.gz.part*"))))) as archive:
        # The "data" filter where this Python has it (3.11.4, 3.10.12 and later); Debian's 3.11.2 has none.
        archive.extractall(unpacked, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert sorted(path.name for path in back.iterdir()) == ["bundle.tar.gz.part00"]  # bundled along the way, then once more: one whole bundle
    brought = unpacked / "experiments" / "campaign-dry-run"  # outside the repository: the dry run's own root
    assert read_table(brought / first / "results.csv").equals(read_table(root / first / "results.csv"))
    assert not list(brought.rglob("checkpoint.pt"))


def test_a_dry_runs_experiment_never_passes_for_a_campaign_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A dry run's grid, finished in seconds on tiny data, left where the real campaign looks
    would count as done and be published: status, run and publish refuse it in one line."""
    root = tmp_path / "campaign"
    tiny = DRY_RUN_ITEMS[0]
    plan_experiment(tiny.space, **tiny.settings("synthetic", root / tiny.name, None))
    collect(root / tiny.name)  # results.csv: what publish would copy
    refusal = "holds a search with budget='smoke', not 'quick'; use another --root"
    for action in ("status", "publish"):
        assert main([action, "--root", str(root)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and refusal in error
    with pytest.raises(ValueError, match=refusal):  # `run` on a GPU (this is its CPU-free part)
        advance(root, CAMPAIGN[:1], "synthetic", jobs=1, device="cpu", seconds=60, say=lambda line: None)
    assert sorted(path.name for path in root.iterdir()) == [tiny.name]
    assert main(["status", "--dry-run", "--root", str(root)]) == 0  # the dry run's own items take it


def test_table6_trains_without_a_validation_split_and_its_page_ranks_on_test_accuracy(tmp_path: Path) -> None:
    """The paper trained Table 6 on every non-test image (a fixed schedule chooses nothing): the
    campaign's table6 item keeps no validation split, its rows rank on test accuracy under its own
    page name (it is a second `depth` table), and neither Optuna nor the probes are told a
    validation accuracy that does not exist."""
    table6 = next(item for item in DRY_RUN_ITEMS if item.name == "table6")
    assert table6.recipe["val_size"] == 0 and table6.space == "depth"
    root = tmp_path / "campaign"
    assert advance(root, (table6,), "synthetic", jobs=2, device="cpu", seconds=300, say=lambda line: None) == ["table6"]
    results = read_table(root / "table6" / "results.csv")
    assert list(results["status"]) == ["completed", "completed"] and set(results["val_source"]) == {"none"}
    assert results["val_accuracy"].isna().all() and results["test_accuracy"].notna().all()
    assert [json.loads(splits)["val"] for splits in results["splits"]] == [0, 0]
    trial = root / "table6" / "trials" / "trial_0000"
    assert pd.read_csv(trial / "metrics.csv")["val_accuracy"].isna().all()
    assert (trial / "model_best.safetensors").stat().st_ino == (trial / "model_final.safetensors").stat().st_ino  # the final weights are the result
    assert optuna.load_study(study_name=None, storage=study_storage(root / "table6")).trials == []
    publish(root, (table6,), into=tmp_path / "leaderboards")
    page = write_page(tmp_path / "leaderboards" / "table6-gpu", tmp_path / "pages", name="table6-gpu")
    text = page.path.read_text()
    assert page.path.name == "table6-gpu.md" and (tmp_path / "pages" / "table6-gpu-curves.png").exists() and not (tmp_path / "pages" / "depth.md").exists()
    assert "| test acc (mean +- std, n) |" in text and "kept no validation split" in text and "(no validation split to draw)" in text
    assert "test accuracy" in page.headline and "No trial completed yet" not in text
    # Held against the paper's Table 6 and the reference PyTorch reproduction of it.
    assert "| ResNet-20 (A) | 0.27M | 0.270M | 8.75 | 8.27 (akamaster/pytorch_resnet_cifar10) |" in text
    with pytest.raises(ValueError, match="kept no validation split"):
        finished_run(trial)
