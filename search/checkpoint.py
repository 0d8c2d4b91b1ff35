"""A run's resumable state: one file, written atomically after every epoch, holding the weights,
the optimizer, the schedule, the random streams and the metrics so far.

The previous epoch's file is kept until the new one is on disk and reads back, so a write cut
short (a kill, a full disk) leaves a checkpoint to resume from. A finished run drops both: its
final and best weights are what it keeps."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import zoo
from search.recipes import Recipe

CHECKPOINT_FORMAT = 1


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoint" / "checkpoint.pt"


def previous_path(path: Path) -> Path:
    return path.with_name("previous.pt")


def load_state(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only`` (tensors and plain values; nothing runs)."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # truncated, garbage or foreign files raise many kinds
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {path} is unreadable ({reason}); delete it to train this run from the start") from None


def latest_state(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The newest readable checkpoint, on the CPU, and, when it is the previous epoch's, a note
    saying why; None when none was ever completed (a run killed, or out of disk, while writing its
    first checkpoint leaves the folder empty or holding a partial temporary file). Read once per
    run: an ImageNet checkpoint with its optimizer state is hundreds of megabytes."""
    previous = previous_path(path)
    if path.exists():
        try:
            return load_state(path), None
        except ValueError as error:
            if not previous.exists():
                raise
            problem = str(error).split(";")[0]
    elif previous.exists():
        problem = f"checkpoint {path} was not written"
    else:
        return None, None
    return load_state(previous), f"{problem}; resuming from the previous epoch's checkpoint {previous}"


def check_same_run(state: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint (read from ``path``) of a different run: other model, data,
    recipe or seed."""
    if not same_run(state.get("config"), identity):
        raise ValueError(f"{path.parent.parent} holds a different run (checkpoint config differs); choose another --out")


def check_same_finished_run(summary: dict[str, Any], identity: dict[str, Any], out: Path) -> None:
    """Refuse to pass a finished run in ``out`` off as this one: the same command again is told
    the run is done, but another model, recipe, data or seed in the same folder would otherwise
    be answered with the first run's summary."""
    keys = ("model", "model_overrides", "data_fingerprint", "recipe", "seed", "data_seed")
    if any(key not in summary for key in keys):
        return  # a summary from before runs recorded their data: nothing to compare it by
    recorded = {"model": summary["model"], "model_overrides": summary["model_overrides"], "data": summary["data_fingerprint"], "recipe": summary["recipe"], "seed": summary["seed"], "data_seed": summary["data_seed"]}
    if summary.get("world_size", 1) > 1:
        recorded["world_size"] = summary["world_size"]
    if not same_run(recorded, identity):
        differs = next((key for key in identity if recorded.get(key) != identity[key]), "world_size")
        raise ValueError(f"{out} holds a different finished run ({differs} {recorded.get(differs)!r}, not {identity.get(differs)!r}); choose another --out")


def same_run(stored: dict[str, Any] | None, identity: dict[str, Any]) -> bool:
    """Whether a checkpoint's identity is this run's. A checkpoint written before the recipe
    gained a field is this run's when this run leaves the field at its default, which is what
    the older code did (the resolution fields came that way: 32 px, pad-and-crop)."""
    if stored == identity:
        return True
    if not isinstance(stored, dict) or {**stored, "recipe": None} != {**identity, "recipe": None}:
        return False
    recipe, older = identity["recipe"], stored.get("recipe") or {}
    defaults = Recipe(epochs=1).to_dict()
    added = set(recipe) - set(older)
    return set(older) <= set(recipe) and all(older[key] == recipe[key] for key in older) and all(recipe[key] == defaults[key] for key in added)


@dataclass
class Progress:
    """What a run has done so far, carried across resumes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    best_val_accuracy: float = -1.0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    images_seen: int = 0
    best_epoch: int = 0
    in_epoch: EpochPosition | None = None  # where an interrupted epoch stopped
    precision: str | None = None  # as resolved when the run started ("auto" decided once)
    data_path: str | None = None  # "memory" or "stream", as resolved when the run started
    compile_seconds: float = 0.0
    git_commits: list[str | None] = field(default_factory=list)  # the code of each start and resume, in order


@dataclass
class EpochPosition:
    """Where an interrupted epoch stopped: enough to finish it exactly as it would have gone."""

    epoch: int
    step: int  # steps done
    order: torch.Tensor
    loss_sum: torch.Tensor
    wrong: torch.Tensor
    seconds: float

    def to_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "order": self.order, "loss_sum": self.loss_sum, "wrong": self.wrong, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, device: torch.device) -> EpochPosition | None:
        """The saved position, its tensors on the run's ``device`` (the epoch goes on there)."""
        if not state:
            return None
        moved = {key: state[key].to(device) for key in ("order", "loss_sum", "wrong")}
        return cls(**{**state, **moved})


@dataclass
class TrainingState:
    """The objects a checkpoint restores into."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator

    def save(self, path: Path, identity: dict[str, Any], progress: Progress) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": identity,
            "epoch": progress.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            # The device's default generator on CUDA (dropout draws from it): without it a resumed
            # run would draw the masks of its first epochs again.
            "cuda_rng": torch.cuda.get_rng_state(self.generator.device) if self.generator.device.type == "cuda" else None,
            "metrics": progress.rows,
            "best_val_accuracy": progress.best_val_accuracy,
            "wall_seconds": progress.wall_seconds,
            "train_seconds": progress.train_seconds,
            "images_seen": progress.images_seen,
            "best_epoch": progress.best_epoch,
            "in_epoch": progress.in_epoch.to_state() if progress.in_epoch else None,
            "precision": progress.precision,
            "data_path": progress.data_path,
            "compile_seconds": progress.compile_seconds,
            "git_commits": progress.git_commits,
        }
        previous = previous_path(path)
        if path.exists():
            os.replace(path, previous)  # the last good checkpoint stays until this one is proven
        zoo.write_atomically(path, lambda temporary: torch.save(state, temporary))
        load_state(path)  # read back before the previous one goes
        previous.unlink(missing_ok=True)

    def restore(self, state: dict[str, Any], device: torch.device) -> Progress:
        """Load a checkpoint read on the CPU (``latest_state``) into the run on ``device`` and
        return its progress. Generator states stay on the CPU: ``set_state`` takes only a CPU
        ByteTensor, for a CUDA generator too (a checkpoint mapped onto the GPU cannot resume)."""
        self.model.load_state_dict(state["model"])  # copies onto the parameters' device
        self.optimizer.load_state_dict(state["optimizer"])  # moves its state to the parameters' device
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and device.type == "cuda":  # a CPU run's checkpoint has none
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        return Progress(
            rows=list(state["metrics"]), epoch=state["epoch"], best_val_accuracy=state["best_val_accuracy"],
            wall_seconds=state["wall_seconds"], train_seconds=state["train_seconds"], images_seen=state["images_seen"],
            best_epoch=state.get("best_epoch", 0), in_epoch=EpochPosition.from_state(state.get("in_epoch"), device),
            precision=state.get("precision"), data_path=state.get("data_path"), compile_seconds=state.get("compile_seconds", 0.0),
            git_commits=list(state.get("git_commits", [])),
        )


def drop_resumable_state(out: Path) -> None:
    """A finished run needs no optimizer state: its weights are in model_final/model_best."""
    shutil.rmtree(checkpoint_path(out).parent, ignore_errors=True)
