"""Results tables -> ranked configurations: seeds grouped, means, spreads and the Pareto front."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from leaderboards.schema import (
    INTEGER_COLUMNS,
    NUMBER_COLUMNS,
    REQUIRED_COLUMNS,
    STATUSES,
    architecture,
    config_columns,
    rankable,
    ranking_metric,
    read_table,
)
from zoo.files import PLAIN_NAME, read_json


class ResultsError(ValueError):
    """A missing or malformed results table (one line)."""


def read_csv_table(path: Path) -> pd.DataFrame:
    """A table this project wrote (results, curves, a probe's), or one line naming the file."""
    try:
        return read_table(path)
    except ValueError as error:  # read_table's own one line
        raise ResultsError(str(error)) from None
    except OSError as error:
        raise ResultsError(f"{path} is not a readable CSV table: {str(error).splitlines()[0]}") from None


def read_record(path: Path, what: str) -> dict[str, Any]:
    """The JSON record beside a table (search.json, probe.json): {} where there is none, one line
    naming the file where it cannot be read (torn by an old crash, edited by hand)."""
    if not path.exists():
        return {}
    try:
        record = read_json(path, what)
    except ValueError as error:
        raise ResultsError(str(error)) from None
    if not isinstance(record, dict):
        raise ResultsError(f"{path} is not {what} (a JSON object)")
    return record


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results.csv (or the one inside a directory), checking the columns pages rely on."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        raise ResultsError(f"no results table at {path}")
    frame = read_csv_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise ResultsError(f"{path} has a header but no trials")
    for column in NUMBER_COLUMNS:
        if column in frame.columns:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column].notna() & numbers.isna()
            if bad.any():
                raise ResultsError(f"{path}: column {column} holds {frame.loc[bad, column].iloc[0]!r} (row {int(bad.idxmax()) + 2}), not a number")
            frame[column] = numbers.astype("Int64") if column in INTEGER_COLUMNS and (numbers.dropna() % 1 == 0).all() else numbers
    spaces = set(frame["space"].dropna().astype(str)) if "space" in frame.columns else set()
    for space in spaces:
        check_space_name(space, path)
    unknown = sorted(set(frame["status"].astype(str)) - set(STATUSES))
    if unknown:
        raise ResultsError(f"{path} has unknown status value(s) {', '.join(map(str, unknown))}")
    return frame


def check_space_name(space: str, source: Path | str) -> None:
    """A space names the page file: it must stay a plain file name inside the output folder."""
    if not PLAIN_NAME.fullmatch(space) or space.startswith("."):
        raise ResultsError(f"{source}: space {space!r} is not a plain name (letters, digits, '_', '-', '.'); pages are named after it")


def t_critical_95(degrees: int) -> float:
    """Two-sided 95% Student-t critical value for ``degrees`` degrees of freedom (exact)."""
    from scipy.stats import t  # deferred: only verdicts need it

    return float(t.ppf(0.975, degrees))


def pareto_front(accuracy: pd.Series, macs: pd.Series) -> pd.Series:
    """True where no other configuration is at least as accurate and as cheap, and better in one."""
    marks = []
    for i in accuracy.index:
        dominated = ((accuracy >= accuracy[i]) & (macs <= macs[i]) & ((accuracy > accuracy[i]) | (macs < macs[i]))).any()
        marks.append(not dominated)
    return pd.Series(marks, index=accuracy.index)


def rank_configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration over its completed seeds, best mean accuracy first (validation
    accuracy, or test accuracy for trials without a validation split: ``ranking_metric``)."""
    done = frame[rankable(frame)]
    if done.empty:
        return pd.DataFrame()
    keys = config_columns(frame)
    grouped = done.groupby(keys, dropna=False, sort=False)
    metric = ranking_metric(frame)

    def summarise(group: pd.DataFrame) -> pd.Series:
        values = group[metric].astype(float)
        n = int(values.count())
        return pd.Series({
            "n": n,
            "accuracy_mean": values.mean(),
            "accuracy_std": values.std(ddof=1) if n > 1 else math.nan,
            "test_mean": group["test_accuracy"].astype(float).mean() if "test_accuracy" in group else math.nan,
            "test_source": ",".join(sorted(set(map(str, group["test_source"].dropna())))) if "test_source" in group else "",
            "train_error": group["train_error"].astype(float).mean() if "train_error" in group else math.nan,
            "params": int(group["params"].iloc[0]),
            "gmacs": float(group["macs"].iloc[0]) / 1e9,
            "inference": group["inference_images_per_second"].astype(float).mean() if "inference_images_per_second" in group else math.nan,
            "train_speed": group["images_per_second"].astype(float).mean() if "images_per_second" in group else math.nan,
            "epochs": int(group["epochs"].max()) if "epochs" in group else 0,
            "wall_seconds": group["wall_seconds"].astype(float).mean() if "wall_seconds" in group else math.nan,
            "seeds": ",".join(str(int(s)) for s in sorted(group["seed"])),
        })

    table = grouped.apply(summarise, include_groups=False).reset_index()
    table["label"] = [architecture(row).label for _, row in table.iterrows()]
    table["pareto"] = pareto_front(table["accuracy_mean"], table["gmacs"])
    table = table.sort_values(["accuracy_mean", "gmacs", "label"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table
