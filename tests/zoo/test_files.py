"""The bottom layer's file helpers: atomic writes, the JSON they are read back with, and the check
every command runs on its output folder before it writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.files import check_writable_folder, read_json, write_atomically


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = write_atomically(tmp_path / "summary.json", '{"status": "completed"}')

    def crash_half_way(path: Path) -> None:
        path.write_text('{"status": "runn')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomically(target, crash_half_way)
    assert read_json(target, "a summary") == {"status": "completed"}
    assert [path.name for path in tmp_path.iterdir()] == ["summary.json"]


def test_a_torn_json_file_is_one_error_naming_the_file(tmp_path: Path) -> None:
    torn = tmp_path / "search.json"
    torn.write_text('{"space": "shortc')
    with pytest.raises(ValueError, match=f"{torn} is not a search record \\(") as raised:
        read_json(torn, "a search record")
    assert "\n" not in str(raised.value)


def test_a_writable_folder_passes_and_is_left_as_it_was(tmp_path: Path) -> None:
    # A command refused later for another bad input must leave the disk as it found it, times too.
    before = tmp_path.stat().st_mtime_ns
    check_writable_folder(tmp_path / "new" / "run", "--out")
    check_writable_folder(tmp_path, "--out")
    assert list(tmp_path.iterdir()) == [] and tmp_path.stat().st_mtime_ns == before


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match=f"^--out {tmp_path / 'taken' / 'run'}: {tmp_path / 'taken'} is a file, not a folder$"):
        check_writable_folder(tmp_path / "taken" / "run", "--out")


def test_a_link_to_nothing_is_named_not_followed(tmp_path: Path) -> None:
    # Resolved, a dangling link leads anywhere: mkdir would make its target's whole path.
    (tmp_path / "experiments").symlink_to(tmp_path / "gone" / "experiments")
    with pytest.raises(ValueError, match=f"^--out {tmp_path / 'experiments' / 'run'}: {tmp_path / 'experiments'} is a link to nothing \\({tmp_path / 'gone' / 'experiments'}\\)$"):
        check_writable_folder(tmp_path / "experiments" / "run", "--out")
    assert not (tmp_path / "gone").exists()
