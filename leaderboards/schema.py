"""The results schema: what a row of ``results.csv`` holds, which statuses exist and which rank.

``search`` writes tables with it and ``leaderboards`` reads them with it; it lives here because
leaderboards must never import ``search`` (nor Ray or Optuna), while search may import both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

import zoo

COLUMNS = [
    "trial_id", "space", "model", "block", "shortcut", "depth", "status", "epochs", "epochs_planned",
    "val_accuracy", "best_val_accuracy", "val_source", "test_accuracy", "test_source", "train_error", "train_loss",
    "params", "macs", "wall_seconds", "images_per_second", "inference_images_per_second", "node", "device",
    "gpu_ids", "hardware", "precision", "seed", "data_seed", "data_name", "data_fingerprint", "splits", "image_size", "eval_size", "data_path", "world_size", "budget",
    "recipe", "torch_version", "git_commit", "reason", "error", "command",
]
REQUIRED_COLUMNS = ("trial_id", "model", "block", "shortcut", "depth", "status", "seed", "val_accuracy", "params", "macs")
STATUSES = ("completed", "pruned", "diverged", "failed", "unfinished")  # unfinished: a planned trial not run to its end (yet)
RANKED = "completed"
NOT_RANKED = tuple(status for status in STATUSES if status != RANKED)
CURVES_FILE = "curves.csv"  # beside results.csv: trial_id + each trial's metrics.csv rows (epoch, train_error, val_accuracy, ...)
CURVE_COLUMNS = ("trial_id", "epoch", "train_error", "val_accuracy")  # what the curves plot reads
CONFIG_PREFIX = "config_"  # a configuration key of the trial, as the space produced it
# Identifiers and labels are text even when they look like numbers: Ray's trial ids are 8 hex
# digits, and about 2% are all decimal digits ("00001234" would lose its zeros as a number).
TEXT_COLUMNS = ("trial_id", "space", "model", "block", "shortcut", "status", "node", "gpu_ids", "git_commit", "run", "label", "units", "data_fingerprint", "data_path", "val_source", "test_source")
# Whole numbers that a row may lack (a timm baseline has no depth the zoo describes): nullable
# integers, so 20 stays 20 and not 20.0 beside an empty cell.
INTEGER_COLUMNS = ("depth",)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by ResBench (results, curves, probe tables) with text columns as text;
    one that cannot be parsed (torn by an old crash, edited by hand) is a one-line ValueError
    naming the file."""
    try:
        header = pd.read_csv(path, nrows=0).columns
        return pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS if column in header})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable CSV table: {str(error).strip().splitlines()[0]}") from None


NUMBER_COLUMNS = ("depth", "seed", "val_accuracy", "params", "macs", "epochs", "best_val_accuracy", "test_accuracy", "train_error", "train_loss", "wall_seconds", "images_per_second", "inference_images_per_second")
NO_VALIDATION = "none"  # the val_source of a run that kept no validation split (recipe val_size 0)
ACCURACY_NAMES = {"val_accuracy": "validation", "test_accuracy": "test"}  # what a page calls the accuracy it ranks by


def ranking_metric(frame: pd.DataFrame) -> str:
    """The accuracy a page ranks by and decides its claims on: validation accuracy, or test
    accuracy for a table whose completed trials all kept no validation split. Those ran a fixed
    schedule and nothing was chosen on their test split (He et al. trained Table 6 so)."""
    completed = frame[frame["status"] == RANKED]
    if "val_source" in frame and len(completed) and (completed["val_source"] == NO_VALIDATION).all():
        return "test_accuracy"
    return "val_accuracy"


def rank_needs(frame: pd.DataFrame) -> tuple[str, ...]:
    """The numbers a completed row needs to be ranked; one without them is listed, not ranked."""
    return (ranking_metric(frame), "params", "macs", "seed")


def rankable(frame: pd.DataFrame) -> pd.Series:
    """Rows a page may rank: completed, with every number a rank is made of."""
    return (frame["status"] == RANKED) & frame[list(rank_needs(frame))].notna().all(axis=1)


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that define a configuration (everything a trial varies except its seed)."""
    extra = sorted(c for c in frame.columns if c.startswith(CONFIG_PREFIX) and c != f"{CONFIG_PREFIX}seed")
    return ["model", "block", "shortcut", "depth", *extra]


def model_overrides(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """The ``create_model`` overrides a row describes: its configuration columns, and the block,
    shortcut and depth it was built with (a table without configuration columns still names
    its nets right)."""
    model = str(row["model"])
    block = _value(row.get(f"{CONFIG_PREFIX}block"))
    options = set(zoo.model_options(model, {"block": block} if block is not None else None))
    overrides = {}
    for key, raw in row.items():
        name = str(key).removeprefix(CONFIG_PREFIX)
        if str(key).startswith(CONFIG_PREFIX) and name in options and (value := _value(raw)) is not None:
            overrides[name] = value
    for name in ("block", "shortcut", "depth"):
        value = _value(row.get(name))
        if name in options and name not in overrides and value not in (None, "-") and "," not in str(value):
            overrides[name] = value
    return overrides


def architecture(row: pd.Series | dict[str, Any]) -> zoo.Architecture:
    """The zoo's description of a row's network; a row whose block no longer exists here (a
    plugin's, not imported) is described from its own columns."""
    try:
        return zoo.describe(str(row["model"]), **model_overrides(row))
    except ValueError:
        depth = int(row["depth"]) if not pd.isna(row["depth"]) else 0
        label = f"{row['model']} ({row['block']}, {row['shortcut']}, depth {depth})"
        design = "plain" if row["shortcut"] == "none" else "residual"
        return zoo.Architecture(str(row["model"]), "cifar", design, str(row["block"]), str(row["shortcut"]), depth, False, {}, label)


def _value(raw: Any) -> Any:
    """A configuration cell as the value the space produced: lists from JSON, whole floats as int."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, str) and raw.startswith("["):
        return json.loads(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if hasattr(raw, "item"):  # numpy scalars
        return raw.item()
    return raw
