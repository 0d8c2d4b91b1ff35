"""The bottom layer's file helpers: atomic writes, the JSON they are read back with, and the check
every command runs on its output folder before it writes anything."""

from __future__ import annotations

import os
import sys
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


def test_a_writable_folder_passes_and_the_probe_leaves_nothing(tmp_path: Path) -> None:
    check_writable_folder(tmp_path / "new" / "run", "--out")
    check_writable_folder(tmp_path, "--out")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match=f"^--out {tmp_path / 'taken' / 'run'}: {tmp_path / 'taken'} is a file, not a folder$"):
        check_writable_folder(tmp_path / "taken" / "run", "--out")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_the_permission_bits_allow_but_the_filesystem_refuses_is_refused() -> None:
    # /proc says writable to root's access() (like an NFS export that squashes root) and refuses
    # every mkdir: the check must try one rather than trust the bits. (Not root: the bits refuse.)
    refusal = "cannot write in /proc \\(" if os.geteuid() == 0 else "/proc is not writable"
    with pytest.raises(ValueError, match=f"^--out /proc/resbench-run: {refusal}"):
        check_writable_folder("/proc/resbench-run", "--out")
