"""Where trials are recorded: one tidy row per trial, written atomically as ``results.csv``.

The columns and statuses are the results schema (``leaderboards.schema``), shared with the pages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

import zoo
from leaderboards.schema import COLUMNS, CONFIG_PREFIX, CURVE_COLUMNS, CURVES_FILE, INTEGER_COLUMNS, read_table
from search.config import RESERVED_KEYS, split_config

# What a trial may report. "failed" is also Ray's, for a trial that raised past its retries; a
# trial reports it itself, with its error, for bad input that no retry would mend. "unfinished":
# a planned trial without a finished summary when its experiment was collected.
REPORTED_STATUSES = ("completed", "diverged", "pruned", "failed", "unfinished")


class SearchInterrupted(Exception):
    """The driver was told to stop (SIGTERM, Ctrl-C): finished trials are in results.csv, running
    ones stopped with a checkpoint, and the same command (or ``--resume``) continues them."""

    def __init__(self, finished: int, unfinished: int) -> None:
        super().__init__(f"interrupted: {finished} trial(s) finished and recorded, {unfinished} stopped with a checkpoint; run the same command to continue")
        self.finished, self.unfinished = finished, unfinished


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def result_row(space: str, trial_id: str, config: dict[str, Any], metrics: dict[str, Any], error: str | None) -> dict[str, Any]:
    """A row from a trial's configuration and its last reported metrics."""
    reported = metrics.get("status")
    error = error or (metrics.get("error") if reported == "failed" else None)
    if error:
        status = "failed"
    elif reported in REPORTED_STATUSES:
        status = reported
    else:  # stopped by ASHA or the time budget after `epoch` epochs, or before its first one
        status = "pruned"
    row: dict[str, Any] = {key: _finite(metrics.get(key)) for key in COLUMNS}
    row.update({"trial_id": str(trial_id), "space": space, "model": config["model"], "status": status, "seed": config.get("seed", 0)})
    row["epochs"] = metrics.get("epoch", 0)
    if status == "pruned" and not row.get("reason"):
        row["reason"] = f"stopped early after {row['epochs']} epoch(s)"
    if error:
        row["error"] = error.strip().splitlines()[-1][:300] if error.strip() else "error"
    if metrics.get("architecture"):  # the trial described what it built
        row.update(json.loads(metrics["architecture"]))
    else:  # it never got that far: describe the configuration here
        try:
            model, overrides, _ = split_config(config)
            row.update(zoo.describe(model, **overrides).columns())
            if row.get("params") is None:
                measured = zoo.complexity(model, **overrides)
                row["params"], row["macs"] = measured.params, measured.macs
        except ValueError as problem:  # the configuration itself is bad: the row says so
            row["error"] = row.get("error") or str(problem)
    for key, value in config.items():
        if key not in RESERVED_KEYS:
            row[f"{CONFIG_PREFIX}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return row


def summary_report(summary: dict[str, Any], where: dict[str, Any], epochs_planned: int, out: Path) -> dict[str, Any]:
    """A finished run's last report, from its summary.json: what a Ray trial reports at its end
    and what collecting a planned trial reads, so both make the same row."""
    report = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    report.update(where)
    report.update({
        "epoch": summary["epochs"],
        "epochs_planned": epochs_planned,
        "recipe": json.dumps(summary["recipe"], sort_keys=True),
        "splits": json.dumps(summary["splits"], sort_keys=True),
        "eval_size": json.dumps(summary["eval_size"], sort_keys=True) if summary.get("eval_size") else None,  # the evaluation's resize, crop and crops
        "architecture": json.dumps(summary["architecture"], sort_keys=True),
        "out": str(out),
    })
    if report.get("val_accuracy") is None:  # diverged in its first epoch
        report["val_accuracy"] = float("nan")
    return report


NESTED_COLUMNS = ("recipe", "splits", "eval_size")  # JSON text in the CSV, nested in Parquet


def write_results(out: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``out/results.csv`` atomically (a kill never leaves half a table), and beside it
    ``curves.csv``: every trial's per-epoch metrics in one table; and ``results.parquet`` where
    pyarrow is installed (the ``parquet`` extra). The CSV is the contract."""
    write_curves(out, [str(row["trial_id"]) for row in rows])
    frame = results_frame(rows)
    written = zoo.write_atomically(out / "results.csv", frame.to_csv(index=False))
    write_parquet(out / "results.parquet", frame)
    return written


def write_parquet(path: Path, frame: pd.DataFrame) -> Path | None:
    """The results table as Parquet, the JSON columns as nested columns (a recipe is a struct, a
    list a list); None where pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:
        for column in NESTED_COLUMNS:
            if isinstance(record.get(column), str):
                record[column] = json.loads(record[column])
    table = pa.Table.from_pylist(records)
    return zoo.write_atomically(path, lambda temporary: pq.write_table(table, str(temporary)))


# A search's driver rewrites curves.csv at every trial's end: each trial's metrics.csv is parsed
# again only when it has changed (a resumed trial appends epochs), not once per trial end; at 500
# trials, parsing them all again took 1.2 s of the driver's loop at each end.
_curves_read: dict[Path, tuple[tuple[int, int, int], pd.DataFrame]] = {}


def trial_curve(path: Path, trial_id: str) -> pd.DataFrame | None:
    """One trial's ``metrics.csv`` with its trial id, or None while no epoch has finished (or the
    file is not on this node's view yet)."""
    try:
        stat = path.stat()
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # an atomic rewrite is a new inode
        if (cached := _curves_read.get(path)) is not None and cached[0] == seen:
            return cached[1]
        curve = pd.read_csv(path).assign(trial_id=trial_id)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    _curves_read[path] = (seen, curve)
    return curve


def write_curves(out: Path, trial_ids: list[str]) -> Path:
    """``out/curves.csv``: the ``metrics.csv`` of each trial under ``out/trials/`` (the epochs it
    trained, a stopped or diverged one's too), with its trial id, in trial order."""
    tables = [curve for trial_id in sorted(trial_ids) if (curve := trial_curve(out / "trials" / trial_id / "metrics.csv", trial_id)) is not None]
    # Before any trial has finished an epoch the table is a header, with the columns a page reads.
    curves = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(CURVE_COLUMNS))
    curves = curves[["trial_id", *[c for c in curves.columns if c != "trial_id"]]]
    return zoo.write_atomically(out / CURVES_FILE, curves.to_csv(index=False))


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = sorted(c for c in frame.columns if c not in COLUMNS)
    frame = frame[COLUMNS + extra]
    for column in INTEGER_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    if len(frame):
        frame["trial_id"] = frame["trial_id"].astype(str)
        frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
    return frame


def read_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.csv"
    if not path.exists():
        return []
    frame = read_table(path)
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
