"""A search driver told to stop (SIGTERM from a scheduler, Ctrl-C) stops without losing work.

It launches nothing more and asks the running trials to checkpoint at their next step, through a
file in the experiment (``STOP_REQUESTED_FILE``, which every node sees: the experiment is on
shared storage); each running trial checkpoints and leaves ``CHECKPOINTED_FILE`` in its directory.
The driver waits for those (at most ``GRACE_SECONDS``), then ends the Ray run the way Ray's own
SIGUSR1 stop does: its state is saved with those trials unfinished, and a resume restarts each in
its directory, from its checkpoint. A second signal stops at once.

Ray-free: the handlers are installed before Ray starts, so a signal while the data loads is
handled too; ``ray.init`` installs its own SIGTERM handler (it logs and aborts), so ``reclaim``
sets ours again once Ray is connected. While ``ray.init`` itself runs (about 2 s on a 2-core
machine) a SIGTERM is Ray's: the driver ends at once (exit 15 or 134, with Ray's stack dump) and
Ray's own exit stops the processes it started. No trial has started then, so nothing is lost
and the same command goes on as before. (Blocking the signal across ``ray.init`` would close that
window, but Ray's processes started meanwhile would inherit the block and ignore its shutdown.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zoo
from search.train import EXIT_INTERRUPTED

STOP_REQUESTED_FILE = "stop-requested"
CHECKPOINTED_FILE = "stopped-with-checkpoint"
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """This driver's stop: module state (``current``), not the searcher's or a callback's, since a
    restored Ray run brings back the pickled ones, and the stop belongs to this driver."""

    GRACE_SECONDS = 60.0  # Slurm waits 30-120 s between SIGTERM and SIGKILL, per site
    # Once Ray's loop is told to end it saves its state, then stops the trial actors. Should that
    # stopping hang (seen once in CI, not reproduced), the driver leaves anyway: the state is saved.
    LEAVE_AFTER_SECONDS = 60.0

    def __init__(self) -> None:
        self.out: Path | None = None  # the experiment, once this driver holds it (``own``)
        self.requested_at: float | None = None
        self.ended = False
        self.unfinished: set[str] = set()  # trials running when the stop came
        self.search_ended = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self, signum: int, frame: Any) -> None:
        if self.requested_at is not None:
            self.end_run()
            return
        self.requested_at = time.time()
        name = signal.Signals(signum).name
        if self.out is None:  # the driver is still loading the data: no trial has started
            say_from_handler(f"{name}: no trial has started; stopping once the data has loaded (a second signal stops at once)")
            return
        if self.out.is_dir():  # no folder yet: no trial runs
            zoo.write_atomically(self.out / STOP_REQUESTED_FILE, f"{name} at {time.ctime()}\n")
        say_from_handler(f"{name}: launching no more trials; running trials checkpoint at their next step (waiting up to {self.GRACE_SECONDS:.0f} s)")

    def check(self, trials: list[Any]) -> None:
        """At each step of Ray's loop: end the run once every running trial has checkpointed."""
        if self.requested_at is None or self.ended or self.out is None:
            return
        running = {t.trial_id for t in trials if t.status == "RUNNING"}
        self.unfinished |= running
        checkpointed = all((self.out / "trials" / trial_id / CHECKPOINTED_FILE).exists() for trial_id in running)
        if checkpointed or time.time() - self.requested_at > self.GRACE_SECONDS:
            self.end_run()

    def end_run(self) -> None:
        self.ended = True
        if callable(signal.getsignal(signal.SIGUSR1)):  # Ray Tune's graceful stop: save the state, end the loop
            threading.Thread(target=self._leave_if_stuck, daemon=True).start()
            signal.raise_signal(signal.SIGUSR1)
        else:  # a second signal before Ray's loop began: nothing runs yet, leave as a killed driver would
            os._exit(EXIT_INTERRUPTED)


    def _leave_if_stuck(self) -> None:
        time.sleep(self.LEAVE_AFTER_SECONDS)
        if not self.search_ended:
            from search.results import SearchInterrupted, read_results

            print(f"Ray's run did not end within {self.LEAVE_AFTER_SECONDS:.0f} s of the stop; leaving now (its state is saved)", file=sys.stderr, flush=True)
            if self.out is not None:  # the same last line as a stop that ended in time
                stopped = len(list(self.out.glob(f"trials/*/{CHECKPOINTED_FILE}")))
                print(SearchInterrupted(len(read_results(self.out)), stopped), file=sys.stderr, flush=True)
            os._exit(EXIT_INTERRUPTED)


def say_from_handler(line: str) -> None:
    """A line said by a signal handler: written to standard output's file descriptor, not through
    ``sys.stdout``, whose buffer the interrupted code may be writing (the driver prints progress):
    Python refuses that reentrant call with a RuntimeError, which ended the driver instead of
    stopping it."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without one (captured in-process): no buffer to re-enter
        print(line, flush=True)
        return
    try:
        os.write(descriptor, f"{line}\n".encode())
    except OSError:
        pass  # nobody reads standard output any more: the stop goes on without the line


current = GracefulStop()


def own(out: Path) -> None:
    """From now on a stop is written into ``out`` for its trials to see: the driver holds the
    experiment (before, another driver might, and the stop would reach its trials)."""
    (out / STOP_REQUESTED_FILE).unlink(missing_ok=True)  # an earlier driver's stop is not this one's
    current.out = out


def reclaim() -> None:
    """Our handlers again, over the ones Ray's core worker installed when it connected."""
    if _installed and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, current.request)


_installed = False


@contextmanager
def handled() -> Iterator[GracefulStop]:
    """SIGTERM and Ctrl-C handled by a fresh ``current`` for as long as the search runs (in the
    main thread only: handlers belong there; a caller in another thread keeps its own). Until the
    driver ``own``s its experiment a stop is only noted: the driver ends before Ray starts."""
    global current, _installed
    current = GracefulStop()
    if threading.current_thread() is not threading.main_thread():
        yield current
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ray's own would end the trials without a checkpoint
    previous = {signum: signal.signal(signum, current.request) for signum in SIGNALS}
    _installed = True
    try:
        yield current
    finally:
        current.search_ended = True
        _installed = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
