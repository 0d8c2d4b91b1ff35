"""One owner per experiment and per run: a live owner refuses a second one, a dead one is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.lease import LEASE_FILE, STALE_SECONDS, Lease, LeaseHeld, process_start_time, read_holder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A directory whose lease another live process holds."""
    directory = tmp_path / "owned"
    code = f"import time\nfrom search.lease import Lease\nwith Lease({str(directory)!r}, 'search driver'):\n    print('held', flush=True)\n    time.sleep(120)\n"
    with subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True) as holder:  # its pipe closed at the end
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            yield directory
        finally:
            holder.kill()


def write_lease(directory: Path, **fields: object) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": 1, "started": time.time(), "heartbeat": time.time(), "process_start": "1", "command": "test", **fields}
    (directory / LEASE_FILE).write_text(json.dumps(record))


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_live_owner_refuses_a_second_one_naming_it(held: Path) -> None:
    with pytest.raises(LeaseHeld) as refused:
        Lease(held, "search driver").acquire()
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid " in message and "since " in message and "\n" not in message


def test_a_second_search_driver_is_refused_before_anything_is_written(held: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.run import main

    assert main(["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--out", str(held)]) == 2
    err = capsys.readouterr().err
    assert "is in use by another search driver" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in held.iterdir()) == [LEASE_FILE]
    assert main(["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--out", str(held), "--plan"]) == 2
    assert "is in use by another search driver" in capsys.readouterr().err
    assert sorted(p.name for p in held.iterdir()) == [LEASE_FILE]
    (held / "plan.json").write_text(json.dumps({"space": "shortcuts", "root": ".", "trials": []}))  # a planned experiment...
    assert main(["--collect", str(held)]) == 2  # ...is collected by one process at a time
    assert "is in use by another search driver" in capsys.readouterr().err
    assert not (held / "results.csv").exists()


def test_a_second_training_run_on_one_out_is_refused(held: Path) -> None:
    args = ["--model", "resnet20", "--data", "synthetic", "--budget", "smoke", "--out", str(held)]
    result = subprocess.run([sys.executable, "-m", "search.train", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "is in use by another" in result.stderr and "Traceback" not in result.stderr


def test_a_dead_owner_on_this_host_is_taken_over_and_said_so(tmp_path: Path) -> None:
    write_lease(tmp_path, pid=dead_pid(), process_start="123")
    said: list[str] = []
    with Lease(tmp_path, "search driver", say=said.append):
        holder = read_holder(tmp_path / LEASE_FILE)
        assert holder is not None and holder.pid == os.getpid() and holder.process_start == process_start_time(os.getpid())
    assert said and said[0].startswith(f"took over {tmp_path} from a search driver that is no longer running")
    assert not (tmp_path / LEASE_FILE).exists()  # released


def test_a_reused_pid_is_not_mistaken_for_the_owner(tmp_path: Path) -> None:
    write_lease(tmp_path, pid=os.getppid(), process_start="0")  # a live pid, started at another time
    with Lease(tmp_path, "search driver", say=lambda _: None):
        pass


def test_another_hosts_owner_counts_while_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    write_lease(tmp_path, host="node-elsewhere", heartbeat=time.time())
    with pytest.raises(LeaseHeld, match="host node-elsewhere"):
        Lease(tmp_path, "search driver").acquire()
    write_lease(tmp_path, host="node-elsewhere", heartbeat=time.time() - STALE_SECONDS - 1)
    with Lease(tmp_path, "search driver", say=lambda _: None):
        assert read_holder(tmp_path / LEASE_FILE).host == socket.gethostname()


def test_the_heartbeat_is_refreshed_while_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import search.lease

    monkeypatch.setattr(search.lease, "HEARTBEAT_SECONDS", 0.05)
    with Lease(tmp_path, "search driver"):
        first = read_holder(tmp_path / LEASE_FILE).heartbeat
        time.sleep(0.3)
        assert read_holder(tmp_path / LEASE_FILE).heartbeat > first
