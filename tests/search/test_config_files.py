"""--config FILE for train and search: a file gives the settings, flags given win, a finished
search's search.json reproduces it, and a bad file or key is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.run import main as search_main
from search.train import main as train_main

SETTINGS = ("space", "data", "budget", "recipe", "sampler", "seeds", "objective", "baselines", "trials", "data_seed", "compile", "deterministic")


def test_search_json_reproduces_the_search_it_came_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "first"
    flags = ["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--recipe", "epochs=1", "train_subset=128", "--seeds", "2", "--trials", "3", "--baselines", "timm:resnet10t,cifar_vgg11", "--data-seed", "4", "--deterministic", "--plan"]
    assert search_main([*flags, "--out", str(first)]) == 0
    again = tmp_path / "again"
    assert search_main(["--config", str(first / "search.json"), "--out", str(again), "--plan"]) == 0
    original, reproduced = (json.loads((d / "search.json").read_text()) for d in (first, again))
    assert {k: original[k] for k in SETTINGS} == {k: reproduced[k] for k in SETTINGS}
    assert original["baselines"] == ["timm:resnet10t", "cifar_vgg11"]
    assert original["deterministic"] and all(" --deterministic " in t["command"] for t in json.loads((again / "plan.json").read_text())["trials"])
    assert [t["config"] for t in json.loads((first / "plan.json").read_text())["trials"]] == [t["config"] for t in json.loads((again / "plan.json").read_text())["trials"]]
    capsys.readouterr()


def test_a_yaml_file_gives_the_settings_and_flags_win(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("space: depth\ndata: synthetic\nbudget: smoke\nseeds: 2\nbaselines: false\nrecipe:\n  epochs: 1\n  milestones: [0.5, 0.75]\n")
    assert search_main(["--config", str(config), "--seeds", "3", "--out", str(tmp_path / "x"), "--plan"]) == 0
    settings = json.loads((tmp_path / "x" / "search.json").read_text())
    assert (settings["space"], settings["seeds"], settings["baselines"]) == ("depth", 3, False)
    assert settings["recipe"]["epochs"] == 1 and settings["recipe"]["milestones"] == [0.5, 0.75]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ('{"space": "shortcuts", "seedz": 3}', ".json", "unknown setting in --config .*'seedz' \\(did you mean seeds\\?\\); valid: "),
        ("space: [unclosed", ".yaml", "is not valid YAML"),
        ("[1, 2]", ".json", "must hold a mapping"),
    ],
)
def test_a_bad_config_file_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, suffix: str, message: str) -> None:
    config = tmp_path / f"bad{suffix}"
    config.write_text(text)
    assert search_main(["--config", str(config), "--out", str(tmp_path / "x"), "--plan"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and __import__("re").search(message, error), error
    assert not (tmp_path / "x").exists()


def test_train_takes_a_config_file_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: resnet20\ndata: synthetic\nbudget: smoke\nout: {tmp_path / 'run'}\nepochs: 1\ntrain_subset: 128\nshortcut: B\n")
    assert train_main(["--config", str(config), "--epochs", "2", "--threads", "1"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"] == "resnet20" and summary["recipe"]["epochs"] == 2 and summary["recipe"]["train_subset"] == 128
    assert summary["model_overrides"] == {"shortcut": "B"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A file's values meet each option's own type, as the same words on a command line do,
        # named as the file names them.
        ("space: shortcuts\nseeds: 2.5\n", "search.yaml: seeds: invalid int value: '2.5'"),
        ("space: shortcuts\ndata_seed: true\n", "search.yaml: data_seed: invalid int value: 'true'"),
        ("space: shortcuts\nsampler: tp\n", "search.yaml: sampler: invalid choice 'tp' (did you mean tpe?); valid: "),
        ("space: shortcuts\nlog: 5\n", "unknown --log '5'; valid: tensorboard, csv, mlflow"),
        ("space: shortcuts\nresume: 3\n", "resume is a switch, true or false; got 3"),
        ("space: shortcuts\nrecipe: 5\n", "recipe must be a mapping of recipe fields (epochs: 5), got 5"),
        ("space: shortcuts\nbaselines: 5\n", "baselines must be true (the family's VGG), false (none) or a list of models, got 5"),
        # Only a finished search's search.json (it holds recorded_at) has its record ignored; in a
        # hand-written file "device: cuda" meant a setting, and is told where that setting lives.
        ("space: shortcuts\ndevice: cuda\n", "search.yaml: device is recorded by a search in its search.json, not a setting; a search's trials use GPUs by gpus_per_trial (e.g. 1; 0 keeps them on the CPU)"),
        ("space: shortcuts\nprecision: fp32\n", "search.yaml: precision is recorded by a search in its search.json, not a setting; the trials' precision is a recipe field (recipe: {precision: bf16})"),
        ("space: shortcuts\nthreads: 4\n", "search.yaml: threads is recorded by a search in its search.json, not a setting; a trial's CPU threads are its cpus_per_trial"),
        ("space: shortcuts\ngit_commit: abc\n", "search.yaml: git_commit is recorded by a search in its search.json, not a setting; a finished search's whole search.json (with its recorded_at) may hold it, and it is then ignored"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_a_recorded_key_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(text)
    assert search_main(["--config", str(config), "--data", "synthetic", "--out", str(tmp_path / "x"), "--plan"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1, error
    assert not (tmp_path / "x").exists()


def test_a_train_config_value_of_the_wrong_type_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: resnet20\ndata: synthetic\nseed: true\nout: {tmp_path / 'run'}\n")
    assert train_main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert f"--config {config}: seed: invalid int value: 'true'" in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()
