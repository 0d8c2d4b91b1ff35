"""``resbench``: every subcommand reaches its module, --version, and bad input in one line; every
entry point speaks the same grammar (zoo.commandline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import SUBCOMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("resbench 0.")
    assert main([]) == 2  # no subcommand: the usage, as an error
    listing = capsys.readouterr().err
    assert all(f"  {name} " in listing for name in SUBCOMMANDS), listing


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_reaches_its_modules_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_subcommands_run_with_their_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list", "plain2*"]) == 0
    assert "plain20" in capsys.readouterr().out
    assert main(["collect", str(tmp_path / "none")]) == 2  # the --collect form, with its one-line error
    assert "holds no planned experiment" in capsys.readouterr().err
    assert main(["collect"]) == 2  # once argparse's "argument --collect: expected one argument"
    assert capsys.readouterr().err == "error: resbench collect needs EXPERIMENT (the planned experiment's folder) first: resbench collect EXPERIMENT\n"


def test_a_misspelt_subcommand_is_one_line_with_a_suggestion_and_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "search.cli", "serach"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "did you mean search?" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "resnet20", "--data", "synthetic", "--out", "x", "--budget", "quik"], "argument --budget: invalid choice 'quik' (did you mean quick?); valid: smoke, quick, paper"),
        (["search", "--space", "shortcuts", "--budget", "papr"], "invalid choice 'papr' (did you mean paper?); valid: smoke, quick, paper"),
        (["search", "--space", "shortcuts", "--sed", "3"], "unrecognized arguments: --sed 3 (did you mean --seeds?)"),
        # A run's --seed: argparse took it for an abbreviation of --seeds (three seeds a configuration).
        (["search", "--space", "shortcuts", "--seed", "3"], "unrecognized arguments: --seed 3 (did you mean --seeds?)"),
        (["zoo", "complexity", "resnet20", "--input", "16"], "unrecognized arguments: --input 16 (did you mean --input-size?)"),
        # Nothing near by name (once "--decode": the two dashes every option shares made it near).
        (["search", "--space", "shortcuts", "--models", "resnet20"], "error: unrecognized arguments: --models resnet20\n"),
        # A recipe field given as a flag, as search.train takes it: a search takes it in --recipe.
        (["search", "--space", "shortcuts", "--warmup-lr", "0.01"], "unrecognized arguments: --warmup-lr 0.01 (did you mean --recipe warmup_lr=0.01?)"),
        (["probe", "gradients", "--runs", "a"], "unrecognized arguments: --runs a (--runs is an option of lesion, responses)"),
        (["probe", "lesion", "--runs", "a", "--drawz", "3"], "unrecognized arguments: --drawz 3 (did you mean --draws?)"),
        (["probe", "gradients", "--data-seed", "one"], "argument --data-seed: invalid int value: 'one'"),
        (["zoo", "lst"], "invalid choice 'lst' (did you mean list?)"),
        (["leaderboards", "--reslts", "x"], "unrecognized arguments: --reslts x (did you mean --results?)"),
        (["campaign", "stauts"], "invalid choice 'stauts' (did you mean status?); valid: status, run, publish"),
    ],
)
def test_every_entry_point_refuses_bad_arguments_in_one_line_with_a_suggestion(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


# Every entry point that writes, each told to write into "taken" (which the test makes).
WRITING_COMMANDS = [
    ["train", "--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--out", "taken/run"],
    ["search", "--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--out", "taken", "--plan"],
    ["probe", "gradients", "--models", "resnet20", "--data", "synthetic", "--out", "taken"],
    ["leaderboards", "--out", "taken"],
    ["campaign", "run", "--dry-run", "--root", "taken", "--minutes", "1"],
]


@pytest.mark.parametrize("argv", WRITING_COMMANDS)
def test_every_entry_point_refuses_an_output_folder_behind_a_link_to_nothing(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolved, the link would lead anywhere: search.train and the campaign made its target's
    # whole path, the others traced back at their first mkdir.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").symlink_to(tmp_path / "gone" / "away")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'taken'} is a link to nothing ({tmp_path / 'gone' / 'away'})" in err, err
    assert [path.name for path in tmp_path.iterdir()] == ["taken"]


@pytest.mark.parametrize("argv", WRITING_COMMANDS)
def test_every_entry_point_refuses_an_output_folder_that_is_a_file(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file in the way")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'taken'} is a file, not a folder" in err, err
    assert [path.name for path in tmp_path.iterdir()] == ["taken"] and (tmp_path / "taken").read_text() == "a file in the way"
