"""One owner per experiment and per run: a lease file with host, pid, start time and a heartbeat.

The holder refreshes the heartbeat every few seconds from a background thread. Another process
may take the lease only when the holder is dead: its pid is gone on the same host, or its
heartbeat is older than ``STALE_SECONDS`` (another host, whose pids cannot be checked). Nothing
relies on ``flock``, which NFS does not honour across hosts; the file is written atomically and
read back, so of two processes that take over a dead lease at once, one wins and one is refused.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zoo

LEASE_FILE = "owner.json"
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0  # six missed heartbeats: the holder is gone (or its host is)


class LeaseHeld(ValueError):
    """Another live process owns the directory (one line naming it)."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: float  # when it took the lease (epoch seconds)
    heartbeat: float
    process_start: str  # the pid's start time on its host, so a reused pid is not mistaken for it
    command: str

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"host {self.host}, pid {self.pid}, since {since}, heartbeat {time.time() - self.heartbeat:.0f} s ago"

    def alive(self, now: float) -> bool:
        if self.host == socket.gethostname():
            return process_start_time(self.pid) == self.process_start and self.process_start != ""
        return now - self.heartbeat < STALE_SECONDS


def process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when there is no such process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""
        except PermissionError:
            pass
        return "unknown"  # no /proc: the pid exists, its identity cannot be checked


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None  # a torn or foreign file holds nothing: it is replaced


class Lease:
    """``with Lease(directory, "search"):``: own ``directory`` while the block runs.

    ``wait`` seconds are spent waiting for a live holder's heartbeat to go stale before refusing
    (a Ray retry on another node waits out its dead predecessor); a person's command does not wait.
    """

    def __init__(self, directory: Path, what: str, *, wait: float = 0.0, say: Any = print) -> None:
        self.path = Path(directory) / LEASE_FILE
        self.what, self.wait, self.say = what, wait, say
        self.mine: Holder | None = None
        self.made: list[Path] = []  # the folders acquire() created, innermost first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        missing = self.path.parent.absolute()
        while not missing.exists():
            self.made.append(missing)
            missing = missing.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait
        while True:
            now = time.time()
            holder = read_holder(self.path)
            if holder is not None and holder.alive(now) and not self._is_me(holder):
                if time.monotonic() < deadline:
                    time.sleep(min(HEARTBEAT_SECONDS, max(0.1, deadline - time.monotonic())))
                    continue
                self.refuse_if_held()
            mine = Holder(socket.gethostname(), os.getpid(), now, now, process_start_time(os.getpid()), " ".join(sys.argv)[:300])
            self.path.parent.mkdir(parents=True, exist_ok=True)  # again: a refused process's release may have removed it
            zoo.write_atomically(self.path, json.dumps(asdict(mine)))
            time.sleep(0.05)  # another taker writing at the same moment: the last rename wins
            if read_holder(self.path) == mine:
                break
        if holder is not None and not self._is_me(holder):
            self.say(f"took over {self.path.parent} from a {self.what} that is no longer running ({holder.describe()})")
        self.mine = mine
        self._thread = threading.Thread(target=self._beat, name="resbench-lease", daemon=True)
        self._thread.start()

    def refuse_if_held(self) -> None:
        """Raise LeaseHeld when another live process owns the directory; take nothing."""
        holder = read_holder(self.path)
        if holder is not None and holder.alive(time.time()) and not self._is_me(holder):
            raise LeaseHeld(f"{self.path.parent} is in use by another {self.what} ({holder.describe()}); wait for it to finish or stop it")

    def _is_me(self, holder: Holder) -> bool:
        return holder.host == socket.gethostname() and holder.pid == os.getpid()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.mine is None:
                return
            self.mine = Holder(**{**asdict(self.mine), "heartbeat": time.time()})
            try:
                zoo.write_atomically(self.path, json.dumps(asdict(self.mine)))
            except OSError:
                pass  # a full or read-only disk: the next beat tries again

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS)
        holder = read_holder(self.path)
        if holder is not None and self._is_me(holder):
            self.path.unlink(missing_ok=True)
        self.mine = None
        # Work refused before it wrote anything (bad data, a run that fails its checks) leaves no
        # empty folder behind: the folders this lease made go again, as long as they are empty.
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:  # something was written there (or by someone else): it stays
                break
        self.made = []
