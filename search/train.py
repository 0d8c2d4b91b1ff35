"""Train one variant: the loop every search trial runs, and its command line.

    python -m search.train --model resnet20 [--shortcut A] [--block basic] [zoo overrides ...]
        --data DATA --budget smoke|quick|paper [--epochs N] [recipe fields ...]
        [--seed S] [--data-seed S] [--threads T] [--device auto|cpu|cuda] --out DIR

Writes ``DIR/metrics.csv`` (a row per epoch), ``DIR/summary.json``, the final and best-validation
weights (``zoo.save``) and ``DIR/checkpoint/checkpoint.pt`` after every epoch. Running the same
command again resumes from the last complete epoch; a finished run is not retrained.

This module imports neither Ray nor Optuna: it runs where only torch, torchvision, timm and
pandas exist, and the search engine calls ``train`` with a ``report`` callback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
)

import zoo
from search.augment import Normalize, random_crop_flip
from search.data import DataError, Dataset, Split, describe_source, load_dataset
from search.faults import fault
from search.results import architecture
from search.recipes import Recipe, parse_value, recipe_fields, resolve_recipe

CHECKPOINT_FORMAT = 1
METRICS_COLUMNS = ["epoch", "train_loss", "train_error", "val_accuracy", "lr", "seconds", "images_per_second"]
FINISHED = ("completed", "diverged")
DEVICES = ("auto", "cpu", "cuda")
INFERENCE_BATCH = 256


@dataclass(frozen=True)
class TrialConfig:
    """Everything that defines a run; two runs with equal configs compute the same thing."""

    model: str
    data: str
    budget: str = "quick"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_seed: int = 0
    threads: int | None = None  # None: leave torch's setting alone
    device: str = "auto"

    def recipe(self) -> Recipe:
        return resolve_recipe(self.budget, self.recipe_overrides)

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this config."""
        return json.loads(json.dumps({
            "model": self.model,
            "model_overrides": self.model_overrides,
            "data": describe_source(self.data),
            "recipe": self.recipe().to_dict(),
            "seed": self.seed,
            "data_seed": self.data_seed,
        }, sort_keys=True))

    def command(self, out: str | Path) -> str:
        """The ``search.train`` command that replays this run."""
        words = ["python", "-m", "search.train", "--model", self.model]
        for key, value in {**self.model_overrides, **self.recipe_overrides}.items():
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            words += [f"--{key.replace('_', '-')}", text]
        words += ["--data", self.data, "--budget", self.budget, "--seed", str(self.seed), "--data-seed", str(self.data_seed)]
        if self.threads:
            words += ["--threads", str(self.threads)]
        words += ["--device", self.device, "--out", str(out)]
        return shlex.join(words)


# ---------------------------------------------------------------------------------------------
# Devices, precision and the environment a result is reported with


def resolve_device(requested: str) -> torch.device:
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; valid: {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is visible to this process")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_has_fast_bf16() -> bool:
    """AMX tiles make bf16 autocast about 1.8x faster than fp32 for a CIFAR ResNet on the CPU;
    without them bf16 is emulated and slower, so "auto" stays in fp32 there."""
    try:
        with open("/proc/cpuinfo") as handle:
            return "amx_bf16" in handle.read()
    except OSError:
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


# ---------------------------------------------------------------------------------------------
# Building blocks of the loop


def build_model(config: TrialConfig, num_classes: int, device: torch.device | str) -> nn.Module:
    overrides = dict(config.model_overrides)
    if overrides.get("num_classes", num_classes) != num_classes:
        raise ValueError(f"num_classes={overrides['num_classes']} but the data has {num_classes} classes")
    overrides["num_classes"] = num_classes
    with torch.device(device):
        model = zoo.create_model(config.model, **overrides)
    model.zoo_overrides = dict(config.model_overrides)  # saved weights rebuild with the data's classes
    model.zoo_overrides["num_classes"] = num_classes
    return model


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int, depth: int) -> LRScheduler:
    """Per-step schedules from torch.optim.lr_scheduler, composed with SequentialLR for warm-up."""
    if recipe.schedule == "onecycle":
        if recipe.warmup_fraction <= 0:
            raise ValueError("schedule onecycle needs warmup_fraction > 0 (its rising phase)")
        return OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps, pct_start=recipe.warmup_fraction, cycle_momentum=False)
    warmup = int(recipe.warmup_fraction * total_steps)
    if recipe.schedule == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup))
        if warmup == 0:
            return main
        ramp = LinearLR(optimizer, start_factor=1e-2, total_iters=warmup)
        return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
    # multistep, the paper's: a constant warm-up for very deep nets (ResNet-110: 0.01 for ~400 steps)
    warmup = recipe.warmup_iterations if depth >= recipe.warmup_min_depth else 0
    milestones = [max(1, int(m * total_steps) - warmup) for m in recipe.milestones]
    main = MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if warmup == 0 or recipe.lr == 0:
        return main
    constant = ConstantLR(optimizer, factor=recipe.warmup_lr / recipe.lr, total_iters=warmup)
    return SequentialLR(optimizer, [constant, main], milestones=[warmup])


def autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, normalize: Normalize, batch_size: int, device: torch.device, precision: str) -> float:
    """Top-1 accuracy as a fraction, in eval mode, without augmentation."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        images = split.images[start : start + batch_size].to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(normalize(images))
        correct += int((logits.argmax(1) == split.labels[start : start + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / max(1, len(split))


@torch.no_grad()
def inference_throughput(model: nn.Module, normalize: Normalize, image_size: int, device: torch.device, precision: str, min_seconds: float = 0.5) -> float:
    """Eval-mode images/s at batch 256 on the trial's device (random pixels: speed only)."""
    model.eval()
    images = torch.randint(0, 256, (INFERENCE_BATCH, 3, image_size, image_size), dtype=torch.uint8, device=device)
    with autocast(device, precision):
        model(normalize(images))  # warm-up: allocator, kernels selection
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, batches = time.perf_counter(), 0
        while batches < 3 or time.perf_counter() - start < min_seconds:
            model(normalize(images))
            batches += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return batches * INFERENCE_BATCH / (time.perf_counter() - start)


def calibrate_macs_per_second(device: torch.device, precision: str, threads: int, steps: int = 4) -> float:
    """Training throughput of a ResNet-20 here, in MACs/s (forward MACs x images / second), for
    the search plan's wall-time estimate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = zoo.create_model("resnet20").to(device=device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        images = torch.randn(128, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (128,), device=device)
        start = 0.0
        for step in range(steps + 1):
            if step == 1:  # the first step pays for kernel selection
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
            with autocast(device, precision):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return zoo.complexity("resnet20").macs * 128 * steps / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    write_atomically(out / "metrics.csv", pd.DataFrame(rows, columns=METRICS_COLUMNS).to_csv(index=False))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)  # a kill mid-write leaves the previous epoch's checkpoint intact


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoint" / "checkpoint.pt"


class ProgressBar:
    """A one-line in-epoch bar on a terminal; silent when stderr is not one (logs, Ray workers)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()

    def update(self, epoch: int, step: int, steps: int, loss: torch.Tensor) -> None:
        if self.enabled and (step % 10 == 0 or step == steps):
            loss = float(loss)  # a device sync, so only when the bar is drawn
            filled = int(30 * step / steps)
            sys.stderr.write(f"\r  epoch {epoch} [{'#' * filled}{'.' * (30 - filled)}] {step}/{steps} loss {loss:.3f}")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 78 + "\r")


# ---------------------------------------------------------------------------------------------
# The loop

Reporter = Callable[[dict[str, Any], Path], None]


def print_flushed(line: str) -> None:
    print(line, flush=True)  # progress lines reach log files while the run is going


def validate(config: TrialConfig) -> Recipe:
    """Every check that can fail on bad input, before anything is loaded or written."""
    recipe = config.recipe()
    resolve_device(config.device)
    describe_source(config.data)
    if config.seed < 0 or config.data_seed < 0:
        raise ValueError(f"seeds must not be negative, got seed={config.seed}, data_seed={config.data_seed}")
    if config.threads is not None and config.threads < 1:
        raise ValueError(f"--threads must be positive, got {config.threads}")
    build_model(config, config.model_overrides.get("num_classes", 10), "meta")  # names, options, depth
    return recipe


def read_summary(out: Path) -> dict[str, Any] | None:
    path = out / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def train(
    config: TrialConfig,
    out: str | Path,
    *,
    report: Reporter | None = None,
    log: Callable[[str], None] | None = print_flushed,
    progress: bool = False,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``out`` (resuming what is there) and return its summary.

    ``report(row, checkpoint_dir)`` is called after each epoch's checkpoint is on disk; the search
    engine forwards both to Ray Tune. ``dataset`` skips loading when the caller holds it already.
    """
    out = Path(out).resolve()
    recipe = validate(config)
    say = log or (lambda _: None)
    finished = read_summary(out)
    if finished is not None and finished.get("status") in FINISHED:
        say(f"{out} already holds a finished run ({finished['status']}); not retraining")
        return finished

    state_path = checkpoint_path(out)
    if state_path.exists() and torch.load(state_path, weights_only=True, map_location="cpu")["config"] != config.identity():
        raise ValueError(f"{out} holds a different run (checkpoint config differs); choose another --out")
    device = resolve_device(config.device)
    precision = resolve_precision(recipe.precision, device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if dataset is None:
        dataset = load_dataset(config.data, data_seed=config.data_seed, val_size=recipe.val_size, test_size=recipe.test_size)
    train_split = dataset.train
    if recipe.train_subset and recipe.train_subset < len(train_split):
        train_split = train_split.take(torch.arange(recipe.train_subset))

    torch.manual_seed(config.seed)
    model = build_model(config, dataset.num_classes, "cpu")
    model = model.to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, len(train_split) // recipe.batch_size)  # the ragged last batch is dropped
    scheduler = build_scheduler(optimizer, recipe, recipe.epochs * steps_per_epoch, getattr(model, "depth", 0))
    generator = torch.Generator(device=device).manual_seed(config.seed)
    normalize = Normalize(dataset.mean, dataset.std, device, channels_last=True)
    train_images = train_split.images.to(device)
    train_labels = train_split.labels.to(device)

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    start_epoch, best_val, wall_before, train_seconds, images_seen = 0, -1.0, 0.0, 0.0, 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=True, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"].cpu() if device.type == "cpu" else state["generator"])
        torch.set_rng_state(state["torch_rng"].cpu())
        rows = list(state["metrics"])
        start_epoch, best_val = state["epoch"], state["best_val_accuracy"]
        wall_before, train_seconds, images_seen = state["wall_seconds"], state["train_seconds"], state["images_seen"]
        say(f"resuming {out.name} from epoch {start_epoch}/{recipe.epochs}")

    started = time.perf_counter()
    status, diverged_at = "completed", None
    bar = ProgressBar(progress)
    nan_step = fault("nan_at_step")
    model.train()
    for epoch in range(start_epoch + 1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train_split), generator=generator, device=device)
        loss_sum = torch.zeros((), device=device)
        wrong = torch.zeros((), device=device, dtype=torch.int64)
        for step in range(steps_per_epoch):
            index = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            images = random_crop_flip(train_images[index], recipe.crop_padding, recipe.flip, generator)
            labels = train_labels[index]
            with autocast(device, precision):
                logits = model(normalize(images))
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
            global_step = (epoch - 1) * steps_per_epoch + step + 1
            if nan_step == global_step:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                status, diverged_at = "diverged", {"epoch": epoch, "step": global_step}
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(index)
            wrong += (logits.detach().argmax(1) != labels).sum()
            bar.update(epoch, step + 1, steps_per_epoch, loss.detach())
        bar.clear()
        if status == "diverged":
            say(f"epoch {epoch}: loss is not finite at step {global_step}; stopping as diverged")
            break
        seconds = time.perf_counter() - epoch_start
        seen = steps_per_epoch * recipe.batch_size
        train_seconds += seconds
        images_seen += seen
        val_accuracy = evaluate(model, dataset.val, normalize, recipe.eval_batch_size, device, precision)
        row = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / seen,
            "train_error": int(wrong) / seen,
            "val_accuracy": val_accuracy,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "images_per_second": seen / seconds,
        }
        rows.append(row)
        if val_accuracy > best_val:
            best_val = val_accuracy
            zoo.save(model, out / "model_best.safetensors")
        save_checkpoint(state_path, {
            "format": CHECKPOINT_FORMAT,
            "config": config.identity(),
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "metrics": rows,
            "best_val_accuracy": best_val,
            "wall_seconds": wall_before + time.perf_counter() - started,
            "train_seconds": train_seconds,
            "images_seen": images_seen,
        })
        write_metrics(out, rows)
        say(
            f"epoch {epoch}/{recipe.epochs}  loss {row['train_loss']:.4f}  train err {row['train_error']:.4f}  "
            f"val {val_accuracy:.4f}  lr {row['lr']:.4g}  {seconds:.1f}s  {row['images_per_second']:.0f} img/s"
        )
        if report is not None:
            report(row, state_path.parent)
        if fault("exit_after_epoch") == epoch and start_epoch == 0:
            os._exit(3)

    write_metrics(out, rows)
    zoo.save(model, out / "model_final.safetensors")
    measured = zoo.complexity(model, input_size=train_split.images.shape[-1])
    test_accuracy = None
    if status == "completed" and dataset.test is not None:
        test_accuracy = evaluate(model, dataset.test, normalize, recipe.eval_batch_size, device, precision)
    summary = {
        "status": status,
        "model": config.model,
        "model_overrides": config.model_overrides,
        "val_accuracy": rows[-1]["val_accuracy"] if rows else None,
        "best_val_accuracy": best_val if rows else None,
        "test_accuracy": test_accuracy,
        "train_error": rows[-1]["train_error"] if rows else None,
        "train_loss": rows[-1]["train_loss"] if rows else None,
        "architecture": architecture(config.model, config.model_overrides),
        "params": measured.params,
        "macs": measured.macs,
        "epochs": len(rows),
        "wall_seconds": wall_before + time.perf_counter() - started,
        "images_per_second": images_seen / train_seconds if train_seconds else None,
        "inference_images_per_second": inference_throughput(model, normalize, train_split.images.shape[-1], device, precision),
        "peak_memory_bytes": peak_memory_bytes(device),
        "data": config.data,
        "data_name": dataset.name,
        "splits": {**dataset.sizes(), "train_used": len(train_split)},
        "val_source": dataset.val_source,
        "test_source": dataset.test_source,
        "data_seed": config.data_seed,
        "seed": config.seed,
        "device": str(device),
        "hardware": hardware_name(device),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "budget": config.budget,
        "recipe": recipe.to_dict(),
        "diverged_at": diverged_at,
        "command": config.command(out),
    }
    write_atomically(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    say(f"{status}: val {summary['val_accuracy']}, test {test_accuracy} ({summary['wall_seconds']:.0f} s) -> {out}")
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def parse_option_value(text: str) -> Any:
    """Model overrides from the command line: numbers, booleans, comma lists, else the string."""
    if "," in text:
        return [parse_option_value(part) for part in text.split(",") if part]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def split_overrides(model: str, extra: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--key value`` pairs -> (model overrides, recipe overrides); unknown keys are errors."""
    pairs: dict[str, str] = {}
    words = list(extra)
    while words:
        word = words.pop(0)
        if not word.startswith("--") or len(word) < 3:
            raise ValueError(f"unexpected argument {word!r}; options look like --name value")
        key, has_value, value = word[2:].partition("=")
        if not has_value:
            if not words:
                raise ValueError(f"option {word} needs a value")
            value = words.pop(0)
        pairs[key.replace("-", "_")] = value
    # Which block options are valid depends on the block(s) chosen on the same command line.
    block = {"block": parse_option_value(pairs["block"])} if "block" in pairs else None
    model_options = zoo.model_options(model, block)
    fields = recipe_fields()
    model_overrides: dict[str, Any] = {}
    recipe_overrides: dict[str, Any] = {}
    for key, value in pairs.items():
        if key in fields:
            recipe_overrides[key] = parse_value(key, value)
        elif key in model_options:
            model_overrides[key] = parse_option_value(value)
        else:
            raise ValueError(
                f"unknown option --{key.replace('_', '-')}; model options: {', '.join(model_options)}; "
                f"recipe fields: {', '.join(fields)}"
            )
    return model_overrides, recipe_overrides


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.train",
        description="Train one zoo variant. Any other --name value is a zoo override (e.g. --shortcut B) or a recipe field (e.g. --epochs 5).",
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="cifar10, cifar100, synthetic, or a folder (CIFAR layout or ImageFolder)")
    parser.add_argument("--budget", default="quick", help="smoke, quick or paper")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all this process may use)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", required=True)
    args, extra = parser.parse_known_args(argv)
    try:
        zoo.model_card(args.model)
        model_overrides, recipe_overrides = split_overrides(args.model, extra)
        config = TrialConfig(
            model=args.model,
            data=args.data,
            budget=args.budget,
            model_overrides=model_overrides,
            recipe_overrides=recipe_overrides,
            seed=args.seed,
            data_seed=args.data_seed,
            threads=args.threads or available_cpus(),
            device=args.device,
        )
        summary = train(config, Path(args.out), progress=True)
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if summary["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
