"""Crash-anywhere soak (not CI): a TPE + ASHA smoke search killed at random moments, resumed each time.

    python benchmarks/soak_search.py [--kills 20] [--trials 12] [--seed 0] [--out DIR]

Each round starts ``python -m search.run ... --resume`` in its own process group, waits a random
time, and SIGKILLs the whole group (driver, Ray, trials): a power cut, not a polite stop. After the
last kill one more resume runs to the end. Then it checks what the reliability section of the
README promises, and prints the figures reported there:

- every trial of the search is in results.csv exactly once (trials lost: 0, duplicates: 0);
- the Optuna study agrees with results.csv: each Ray trial's latest study trial has the state of
  its row (completed COMPLETE, pruned PRUNED, failed/diverged FAIL);
- no trial directory is orphaned (each belongs to a row);
- no resume took longer than ``--resume-bound`` seconds to report its first trial (a stale
  Optuna journal lock left by a kill is waited out for up to 30 s: that is in the bound).

Exit status 0 when every check holds, 1 otherwise. On a 2-core CPU a 20-kill soak takes about
15 minutes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STATES = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "diverged": "FAIL"}


def search_command(out: Path, trials: int) -> list[str]:
    # shortcuts sampled by TPE (ASHA stops trials below a rung's cut), tiny synthetic trials.
    return [
        sys.executable, "-m", "search.run", "--space", "shortcuts", "--sampler", "tpe", "--trials", str(trials),
        "--budget", "smoke", "--data", "synthetic", "--no-baselines", "--out", str(out),
        "--recipe", "train_subset=256", "val_size=64", "test_size=64", "eval_batch_size=64", "epochs=4",
    ]  # no --resume: the same command continues an experiment that exists (the first round has none)


def run_round(command: list[str], env: dict[str, str], kill_after: float | None, log: Path) -> tuple[float | None, int | None]:
    """Start a driver; SIGKILL its process group after ``kill_after`` s (None: let it finish).
    Returns (seconds until its first trial event, its exit status or None when killed)."""
    started = time.monotonic()
    with log.open("a") as sink:
        sink.write(f"\n=== round: kill after {kill_after} s\n")
        sink.flush()
        driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=sink, text=True, start_new_session=True)
        first_event: list[float] = []

        def follow() -> None:  # the driver's lines, as they come
            assert driver.stdout is not None
            for line in driver.stdout:
                sink.write(line)
                if not first_event and "done (" in line:  # a Progress line: a trial ended
                    first_event.append(time.monotonic() - started)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            status = driver.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            status = None
        reader.join(timeout=10)
        return (first_event[0] if first_event else None), status


def check(out: Path, trials: int) -> dict[str, object]:
    import optuna

    from leaderboards.schema import read_table
    from search.study import study_storage

    results = read_table(out / "results.csv")
    ids = list(results["trial_id"])
    study = optuna.load_study(study_name="shortcuts", storage=study_storage(out))
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in sorted(study.trials, key=lambda t: t.number):
        if "ray_trial_id" in trial.user_attrs:
            latest[trial.user_attrs["ray_trial_id"]] = trial
    disagree = [row.trial_id for row in results.itertuples() if row.trial_id not in latest or latest[row.trial_id].state.name != STATES[row.status]]
    directories = {p.name for p in (out / "trials").iterdir()} if (out / "trials").is_dir() else set()
    return {
        "rows": len(ids),
        "lost": max(0, trials - len(set(ids))),
        "duplicates": len(ids) - len(set(ids)),
        "study_disagrees": disagree,
        "orphaned_directories": sorted(directories - set(ids)),
        "statuses": results["status"].value_counts().to_dict(),
    }


def main() -> int:
    from zoo.commandline import OneLineParser  # here, not at the top: the parent process stays free of torch

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="the kill times")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="earliest kill after a start")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="latest kill after a start")
    parser.add_argument("--resume-bound", type=float, default=120.0, help="seconds a resume may take to its first trial event")
    parser.add_argument("--out", default=None, help="experiment directory (default: a new temp dir)")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="resbench-soak-")) / "experiment"
    ray_tmp = tempfile.mkdtemp(prefix="rbsoak", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    log = out.parent / "soak.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = search_command(out, args.trials)
    rng = random.Random(args.seed)
    kills, finished_early, first_events = 0, 0, []
    started = time.monotonic()
    while kills < args.kills:
        first_event, status = run_round(command, env, rng.uniform(args.min_seconds, args.max_seconds), log)
        if first_event is not None:
            first_events.append(first_event)
        if status is None:
            kills += 1
            print(f"kill {kills}/{args.kills} ({time.monotonic() - started:.0f} s)", flush=True)
        elif status in (0, 1):  # the search finished before its kill: the soak is over early
            finished_early += 1
            break
        else:
            print(f"a resume exited {status}: see {log}", file=sys.stderr)
            return 1
    first_event, status = run_round(command, env, None, log)
    if first_event is not None:
        first_events.append(first_event)
    figures = check(out, args.trials)
    slowest = max(first_events, default=float("nan"))
    print(f"experiment: {out} (log {log})")
    print(f"kills survived: {kills}; final resume exit status {status}; statuses {figures['statuses']}")
    print(f"trials lost: {figures['lost']}; duplicates: {figures['duplicates']}; study disagrees on: {figures['study_disagrees'] or 'none'}; orphaned trial directories: {figures['orphaned_directories'] or 'none'}")
    print(f"slowest resume to its first trial event: {slowest:.1f} s (bound {args.resume_bound:.0f} s); wall {time.monotonic() - started:.0f} s")
    ok = status in (0, 1) and figures["lost"] == 0 and figures["duplicates"] == 0 and not figures["study_disagrees"] and not figures["orphaned_directories"] and slowest <= args.resume_bound
    print("soak: every check holds" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
