"""The command-line grammar every entry point shares (zoo/commandline.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from zoo.commandline import EXIT_IO_ERROR, OneLineParser, exit_status


def parser() -> OneLineParser:
    parser = OneLineParser(prog="tool")
    parser.add_argument("--out", default="out")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--runs")
    parser.add_argument("--checkpoint", action="append", dest="runs", help=argparse.SUPPRESS)  # an older spelling
    parser.add_argument("-v", action="count", default=0)
    return parser


@pytest.mark.parametrize(
    ("argv", "given"),
    [
        ([], []),
        (["--jobs", "1"], ["--jobs"]),  # given, though it equals the default
        (["--resume", "--out", "x"], ["--out", "--resume"]),  # in the parser's order
        (["--checkpoint", "a"], ["--runs"]),  # options sharing a destination: named by the first
        (["-vv"], ["-v"]),
    ],
)
def test_options_given_are_those_on_the_command_line_not_the_defaults(argv: list[str], given: list[str]) -> None:
    assert parser().options_given(argv) == given


def test_an_abbreviated_option_is_refused_with_the_option_it_abbreviates(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's abbreviations let a near name pass for another option silently (search.run's
    --seed for --seeds): refused, naming the option meant."""
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--job", "2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --job 2 (did you mean --jobs?)\n"


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--lr", "0.1"], "--lr 0.1 (did you mean --recipe lr=0.1?)"),
        (["--warmup-lr=0.1"], "--warmup-lr=0.1 (did you mean --recipe warmup_lr=0.1?)"),
        (["--lr"], "--lr (did you mean --recipe lr=VALUE?)"),
        (["--lr", "--resume"], "--lr (did you mean --recipe lr=VALUE?)"),
    ],
)
def test_a_key_of_a_key_value_option_given_as_an_option_is_answered_with_the_key_value_form(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    tool = OneLineParser(prog="tool", key_value_options={"--recipe": ["lr", "warmup_lr"]})
    tool.add_argument("--recipe", nargs="*", default=[])
    tool.add_argument("--resume", action="store_true")
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: unrecognized arguments: {hint}\n"


def test_a_settings_files_values_are_defaults_not_options_given() -> None:
    from_file = parser()
    from_file.set_file_defaults({"jobs": 4, "resume": True}, "--config f.yaml")
    assert from_file.options_given(["--out", "x"]) == ["--out"]
    assert from_file.parse_args([]).jobs == 4  # ...while still the values the program gets


def test_a_missing_subcommand_is_named_with_its_choices(capsys: pytest.CaptureFixture[str]) -> None:
    tool = OneLineParser(prog="tool")
    commands = tool.add_subparsers(dest="command", required=True)
    for name in ("list", "predict"):
        commands.add_parser(name)
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args([])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: the following arguments are required: command (list, predict)\n"  # once without the choices


def test_a_file_system_that_refuses_is_one_line_naming_the_file_and_exit_74(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A full disk, a lost mount, an export that squashes root: the command's own bug is not the
    # news, the file is.
    missing = tmp_path / "unmounted" / "results.csv"
    assert exit_status(lambda: missing.write_text("rank,label")) == EXIT_IO_ERROR
    err = capsys.readouterr().err
    assert err == f"error: No such file or directory ({missing}); what was written before is whole: fix this and run the same command again\n"


def test_an_os_error_of_many_lines_or_none_is_still_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(message: str) -> None:
        raise ConnectionError(message)

    for message, said in (("the cluster went away\nat 10.0.0.1:6379\nretry later", "the cluster went away"), ("", "ConnectionError")):
        assert exit_status(lambda: refuse(message)) == EXIT_IO_ERROR
        assert capsys.readouterr().err == f"error: {said}; what was written before is whole: fix this and run the same command again\n"
