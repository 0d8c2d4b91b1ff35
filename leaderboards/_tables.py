"""Results tables -> ranked configurations: seeds grouped, means, spreads and the Pareto front."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

REQUIRED_COLUMNS = ("trial_id", "model", "block", "shortcut", "depth", "status", "seed", "val_accuracy", "params", "macs")
RANKED_STATUS = "completed"
# Configuration columns that identify an architecture beyond block/shortcut/depth.
WIDTH_OPTIONS = ("base_width", "groups", "expansion", "stride_on", "width_multiplier", "widths")


class ResultsError(ValueError):
    """A missing or malformed results table (one line)."""


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results.csv (or the one inside a directory), checking the columns pages rely on."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        raise ResultsError(f"no results table at {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path} is not a readable CSV table: {str(error).splitlines()[0]}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
    unknown = sorted(set(frame["status"]) - {"completed", "pruned", "diverged", "failed"})
    if unknown:
        raise ResultsError(f"{path} has unknown status value(s) {', '.join(map(str, unknown))}")
    return frame


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that define a configuration (everything a trial varies except its seed)."""
    extra = sorted(c for c in frame.columns if c.startswith("config_") and c != "config_seed")
    return ["model", "block", "shortcut", "depth", *extra]


def label(row: pd.Series | dict[str, Any]) -> str:
    """A human name: ResNet-56 (B), plain-20, VGG-16-BN (CIFAR), with width options appended."""
    model = str(row["model"])
    if "vgg" in model:
        depth = "".join(ch for ch in model.split("vgg")[1] if ch.isdigit())
        name = f"VGG-{depth}{'-BN' if model.endswith('_bn') else ''}"
        return f"{name} (CIFAR)" if model.startswith("cifar_") else name
    depth = int(row["depth"]) if not pd.isna(row["depth"]) else "?"
    if row["shortcut"] == "none":
        name = f"plain-{depth}"
    else:
        pre = "pre-act " if str(row["block"]).startswith("preact") else ""
        name = f"{pre}ResNet-{depth} ({row['shortcut']})"
    if "bottleneck" in str(row["block"]):
        name += " bottleneck"
    widths = [f"{key}={row[f'config_{key}']}" for key in WIDTH_OPTIONS if f"config_{key}" in row and not pd.isna(row[f"config_{key}"])]
    return f"{name} {' '.join(widths)}".strip()


def t_critical_95(degrees: int) -> float:
    """Two-sided 95% Student-t critical value (the exact table for small samples)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
             12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}
    if degrees in table:
        return table[degrees]
    below = max((d for d in table if d < degrees), default=1)
    return table[below] if degrees < 30 else 1.96


def pareto_front(accuracy: pd.Series, macs: pd.Series) -> pd.Series:
    """True where no other configuration is at least as accurate and as cheap, and better in one."""
    marks = []
    for i in accuracy.index:
        dominated = ((accuracy >= accuracy[i]) & (macs <= macs[i]) & ((accuracy > accuracy[i]) | (macs < macs[i]))).any()
        marks.append(not dominated)
    return pd.Series(marks, index=accuracy.index)


def rank_configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration over its completed seeds, best mean validation accuracy first."""
    done = frame[frame["status"] == RANKED_STATUS]
    if done.empty:
        return pd.DataFrame()
    keys = config_columns(frame)
    grouped = done.groupby(keys, dropna=False, sort=False)

    def summarise(group: pd.DataFrame) -> pd.Series:
        values = group["val_accuracy"].astype(float)
        n = int(values.count())
        return pd.Series({
            "n": n,
            "val_mean": values.mean(),
            "val_std": values.std(ddof=1) if n > 1 else math.nan,
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
    table["label"] = [label(row) for _, row in table.iterrows()]
    table["pareto"] = pareto_front(table["val_mean"], table["gmacs"])
    table = table.sort_values(["val_mean", "gmacs", "label"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table
