"""``python -m zoo``: tables, and bad names as one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoo.__main__ import main


def test_complexity_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "resnet152", "vgg16", "vgg19"]) == 0
    out = capsys.readouterr().out
    assert "resnet152" in out and "11.2824" in out and "15.4703" in out and "19.6321" in out


def test_list_with_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "plain*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["plain20", "plain32", "plain44", "plain56", "plain110"]


def test_list_prints_cards_and_counts_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "resnet5*"]) == 0
    plain = capsys.readouterr().out
    assert "params" not in plain.splitlines()[0].split() and "paper error %" in plain.splitlines()[0]
    assert main(["list", "resnet5*", "--complexity"]) == 0
    counted = capsys.readouterr().out
    assert "params" in counted.splitlines()[0].split() and "853018" in counted  # resnet56's parameters


def test_unknown_name_exits_2_with_one_line_and_no_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "zoo", "complexity", "resnt152"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "resnet152" in result.stderr and "Traceback" not in result.stderr


def test_a_size_the_net_cannot_take_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "cifar_vgg16", "--input-size", "8"]) == 2  # once a RuntimeError's traceback
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: cifar_vgg16 cannot take 8x8 inputs") and captured.err.count("\n") == 1


def test_unmatched_pattern_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "xyz*"]) == 2
    assert "no model matches" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["zoo"], ["search.cli", "zoo"]], ids=["python -m zoo", "resbench zoo"])
def test_a_reader_that_stops_reading_ends_the_listing_quietly(command: list[str]) -> None:
    """`resbench zoo list | head -3`: the pipe is closed before the table is written (here, before
    the command has even started), which once ended in a BrokenPipeError traceback."""
    listing = subprocess.Popen([sys.executable, "-m", *command, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    assert listing.wait(timeout=120) == 1
    assert listing.stderr.read() == ""
