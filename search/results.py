"""The results table: one tidy row per trial, written atomically as ``results.csv``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import zoo
from search.spaces import split_config

COLUMNS = [
    "trial_id", "space", "model", "block", "shortcut", "depth", "status", "epochs", "epochs_planned",
    "val_accuracy", "best_val_accuracy", "test_accuracy", "test_source", "train_error", "train_loss",
    "params", "macs", "wall_seconds", "images_per_second", "inference_images_per_second", "node", "device",
    "gpu_ids", "hardware", "precision", "seed", "data_seed", "data_name", "splits", "budget", "recipe",
    "torch_version", "git_commit", "reason", "error", "command",
]
STATUSES = ("completed", "pruned", "diverged", "failed")


def architecture(model_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Block, shortcut and depth as built (a VGG has neither block nor shortcut)."""
    with torch.device("meta"):
        model = zoo.create_model(model_name, **overrides)
    if isinstance(model, zoo.ResNet):
        blocks = sorted(set(model.block_names))
        return {"block": ",".join(blocks), "shortcut": model.shortcut_kind.value, "depth": model.depth}
    return {"block": "-", "shortcut": "-", "depth": getattr(model, "depth", None)}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def result_row(space: str, trial_id: str, config: dict[str, Any], metrics: dict[str, Any], error: str | None) -> dict[str, Any]:
    """A row from a trial's configuration and its last reported metrics."""
    _, overrides, _ = split_config(config)
    reported = metrics.get("status")
    if error:
        status = "failed"
    elif reported in ("completed", "diverged", "pruned"):
        status = reported
    else:  # stopped by ASHA or the time budget after `epoch` epochs, or before its first one
        status = "pruned"
    row: dict[str, Any] = {key: _finite(metrics.get(key)) for key in COLUMNS}
    row.update({"trial_id": trial_id, "space": space, "model": config["model"], "status": status, "seed": config.get("seed", 0)})
    row["epochs"] = metrics.get("epoch", 0)
    if status == "pruned" and not row.get("reason"):
        row["reason"] = f"stopped early after {row['epochs']} epoch(s)"
    if error:
        row["error"] = error.strip().splitlines()[-1][:300] if error.strip() else "error"
    try:
        row.update(architecture(config["model"], overrides))
        if row.get("params") is None:
            measured = zoo.complexity(config["model"], **overrides)
            row["params"], row["macs"] = measured.params, measured.macs
    except ValueError as problem:  # the configuration itself is bad: the row says so
        row["error"] = row.get("error") or str(problem)
    for key, value in config.items():
        if key not in ("model", "seed"):
            row[f"config_{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return row


def write_results(out: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``out/results.csv`` atomically (temporary file + rename): a kill never leaves half a table."""
    frame = results_frame(rows)
    path = out / "results.csv"
    temporary = path.with_name(f"results.csv.{os.getpid()}.tmp")
    frame.to_csv(temporary, index=False)
    os.replace(temporary, path)
    return path


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = sorted(c for c in frame.columns if c not in COLUMNS)
    frame = frame[COLUMNS + extra]
    return frame.sort_values("trial_id", kind="stable").reset_index(drop=True) if len(frame) else frame


def read_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.csv"
    if not path.exists():
        return []
    frame = pd.read_csv(path)
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
