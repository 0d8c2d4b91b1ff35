"""The search driver's stop (search/stopping.py) at the moments a signal can arrive."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A driver whose main thread is inside a print when the signal comes. Standard output is the
# usual text and buffer layers over a raw file that raises SIGTERM within its first write after
# "ready": the moment the CI run hit by chance (a reader that signals on seeing a line, answered
# while the printer still held the buffer), made certain.
PRINTING_DRIVER = textwrap.dedent(
    """
    import io, os, signal, sys
    from search import stopping

    class SignalledMidWrite(io.FileIO):
        armed = False

        def write(self, data):
            written = super().write(data)
            if self.armed:
                self.armed = False
                signal.raise_signal(signal.SIGTERM)  # handled before this write returns to the buffer
            return written

    raw = SignalledMidWrite(os.dup(1), "w")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), line_buffering=True)
    with stopping.handled() as stop:
        print("ready")
        raw.armed = True
        print("loading the data")
        print("requested" if stop.requested else "not requested")
    """
)


def test_a_stop_while_the_driver_prints_is_said_and_kept_not_a_crash() -> None:
    # Said through sys.stdout, the handler's line re-entered the buffer the print held: Python
    # raised RuntimeError (reentrant call), and the driver died (exit 1) instead of stopping.
    driver = subprocess.run([sys.executable, "-c", PRINTING_DRIVER], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert driver.returncode == 0 and "reentrant" not in driver.stderr, driver.stderr[-2000:]
    assert driver.stdout.splitlines() == [
        "ready", "loading the data", "SIGTERM: no trial has started; stopping once the data has loaded (a second signal stops at once)", "requested",
    ]
