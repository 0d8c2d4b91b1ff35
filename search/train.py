"""Train one variant: the loop every search trial runs, and its command line.

    python -m search.train --model resnet20 [--shortcut A] [--block basic] [zoo overrides ...]
        --data DATA --budget smoke|quick|paper [--epochs N] [recipe fields ...]
        [--seed S] [--data-seed S] [--threads T] [--device auto|cpu|cuda] [--compile MODE] [--deterministic] [--decode workers|device]
        [--checkpoint-minutes M] --out DIR

Writes ``DIR/metrics.csv`` (a row per epoch), ``DIR/summary.json``, the final and best-validation
weights (``zoo.save``) and ``DIR/checkpoint/checkpoint.pt`` after every epoch. Running the same
command again resumes from the last complete epoch; a finished run is not retrained.

This module imports neither Ray nor Optuna: it runs where only torch, torchvision, timm and
pandas exist, and the search engine calls ``train`` with a ``report`` callback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
)
from torch.utils.data import DataLoader

import zoo
from search.augment import Normalize, augment_at_rest, flip_where
from search.checkpoint import (
    EpochPosition,
    Progress,
    TrainingState,
    check_same_finished_run,
    check_same_run,
    checkpoint_path,
    drop_resumable_state,
    latest_state,
)
from search.compilation import COMPILE_MODES, check_mode, compiled, seconds_compiling
from search.config import TrialConfig, config_option, config_words, parse_words, typed_overrides
from search.data import (
    DataError,
    Dataset,
    FileSplit,
    Split,
    asked_carves,
    choose_data_path,
    describe_source,
    forget_walks,
    load_dataset,
    walking_once,
)
from search.distributed import World, current_world, exit_world, join_launcher_world, leave_world
from search.lease import Lease
from search.measure import INFERENCE_BATCH, evaluate, inference_throughput, peak_memory_bytes
from search.provenance import DEVICES, autocast, code_commit, record, resolve_device, resolve_precision
from search.recipes import BUDGET_NAMES, FAMILIES, Recipe, recipe_fields
from search.stream import (
    BOX_AUGMENTATIONS,
    DECODE_PLACES,
    EpochBatches,
    TrainingFiles,
    check_decode,
    loader_workers,
    on_device,
)
from search.stream import loader as stream_loader
from search.testing import Faults, injected_faults
from zoo.commandline import EXIT_IO_ERROR, OneLineParser, comma_list, exit_status, os_error_line
from zoo.files import check_writable_folder
from zoo.plugins import import_plugins
from zoo.size import available_memory_bytes

METRICS_COLUMNS = ["epoch", "train_loss", "train_error", "val_accuracy", "lr", "seconds", "images_per_second"]
FINISHED = ("completed", "diverged")
INTERRUPTED = "interrupted"  # stopped by SIGTERM/Ctrl-C with a checkpoint; the same command resumes
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: try again (a scheduler may requeue the job)
# Steps between looks at the device-side divergence flag; a diverged run trains at most this many
# steps past its first non-finite loss (on NaN weights: nothing of value is lost).
DIVERGENCE_LOOK_STEPS = 25
# Several ranks agree on stopping or checkpointing every this many steps: reading the agreed flag
# makes the host wait for the device, which a step never does otherwise (one process decides at
# every step, at no cost).
AGREEMENT_STEPS = DIVERGENCE_LOOK_STEPS
# cuBLAS repeats its products only with a fixed workspace per stream; torch refuses a deterministic
# product without one of these settings, which cuBLAS reads when a process first uses it.
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")

Reporter = Callable[[dict[str, Any]], None]


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


def data_config(dataset: Dataset, recipe: Recipe) -> dict[str, object]:
    """How an image becomes this run's evaluation input (timm's pretrained_cfg keys): the shorter
    side resized with Pillow's bicubic to ``eval_resize``, the ``eval_crop`` center crop
    (``search.views.at_rest``), normalised by the training split's statistics; and the class names
    in label order."""
    return {
        "input_size": [3, recipe.eval_crop, recipe.eval_crop], "interpolation": "bicubic", "crop_pct": recipe.eval_crop / recipe.eval_resize,
        "crop_mode": "center", "mean": list(dataset.mean), "std": list(dataset.std), "class_names": list(dataset.classes),
    }


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


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    """The per-epoch table, as pandas would write it (an empty cell for no value), without pandas:
    importing it costs every training process about a second before it can start."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(column) is None or (isinstance(row[column], float) and math.isnan(row[column])) else row[column] for column in METRICS_COLUMNS])
    zoo.write_atomically(out / "metrics.csv", text.getvalue())


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


def print_flushed(line: str) -> None:
    print(line, flush=True)  # progress lines reach log files while the run is going


def validate(config: TrialConfig, memory_share: float = 1.0) -> Recipe:
    """Every check that can fail on bad input, before anything is loaded or written (or built)."""
    recipe = config.recipe()
    device = resolve_device(config.device)
    check_fits(config, recipe, device, memory_share)
    check_mode(config.compile)
    check_decode(config.decode)
    check_deterministic(config, recipe, device)
    describe_source(config.data)
    if recipe.data_path == "stream":
        choose_data_path(recipe.data_path, config.data, recipe.eval_resize, memory_share)  # a source that has no files is refused
    if config.seed < 0 or config.data_seed < 0:
        raise ValueError(f"seeds must not be negative, got seed={config.seed}, data_seed={config.data_seed}")
    if config.threads is not None and config.threads < 1:
        raise ValueError(f"--threads must be positive, got {config.threads}")
    if not config.checkpoint_minutes > 0:
        raise ValueError(f"--checkpoint-minutes must be positive, got {config.checkpoint_minutes}")
    model = build_model(config, config.model_overrides.get("num_classes", 10), "meta")  # names, options, depth
    check_input_size(model, config.model, recipe)
    return recipe


def check_world(recipe: Recipe, world: World, device: torch.device) -> None:
    """Refuse what several ranks cannot do, before anything is written."""
    if recipe.batch_size % world.size:
        raise ValueError(f"batch_size {recipe.batch_size} is the global batch; {world.size} workers need a multiple of {world.size}")
    if world.size > 1 and recipe.sync_bn and device.type != "cuda":
        raise ValueError("recipe field sync_bn needs CUDA workers (torch's SyncBatchNorm); on the CPU each worker's BatchNorm keeps its own statistics")


def check_deterministic(config: TrialConfig, recipe: Recipe, device: torch.device) -> None:
    """Refuse, before anything is written, a deterministic run the device cannot give: on CUDA a
    cuBLAS workspace setting that lets products vary; anywhere, a model using an operation torch
    has no deterministic kernel for on this device (one training step on two images finds it, as
    the run's first step would; the random numbers it draws are given back)."""
    if not config.deterministic:
        return
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if device.type == "cuda" and workspace is not None and workspace not in CUBLAS_DETERMINISTIC:
        raise ValueError(f"--deterministic: CUBLAS_WORKSPACE_CONFIG={workspace} lets cuBLAS vary its products; valid: unset (ResBench sets {CUBLAS_DETERMINISTIC[0]}) or {' or '.join(CUBLAS_DETERMINISTIC)}")
    precision = resolve_precision(recipe.precision, device)
    try:
        with callers_determinism(), torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
            configure_kernels(device, precision, deterministic=True)
            model = build_model(config, config.model_overrides.get("num_classes", 10), device).train()
            images = torch.randn(2, 3, recipe.image_size, recipe.image_size, device=device)
            with autocast(device, precision):
                loss = F.cross_entropy(model(images).float(), torch.zeros(2, dtype=torch.int64, device=device), label_smoothing=recipe.label_smoothing)
            loss.backward()
    except RuntimeError as error:
        if "does not have a deterministic implementation" not in str(error):
            raise
        operation = str(error).split(" does not have")[0].strip().split()[-1]
        raise ValueError(f"--deterministic: {config.model} trains through {operation}, which has no deterministic {device.type} kernel in torch {torch.__version__}; run it without --deterministic") from None


@contextlib.contextmanager
def callers_determinism() -> Iterator[None]:
    """Give the calling process back its own deterministic-algorithms setting (a run sets its own
    for as long as it trains: a Ray worker or a notebook goes on with what it had)."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def check_input_size(model: nn.Module, name: str, recipe: Recipe) -> None:
    """Refuse a training or evaluation size the network cannot take (too small for its strides,
    or a head made for one size), found by a forward pass on the meta device: no memory, no time."""
    # One pass per distinct size other than the model's own (a 1000-layer net takes a second).
    sizes = {size: field for field, size in (("eval_crop", recipe.eval_crop), ("image_size", recipe.image_size)) if size != zoo.model_card(name).input_size}
    for size, field in sizes.items():
        try:
            with torch.no_grad():
                model(torch.empty(2, 3, size, size, device="meta"))
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0][:120]
            raise ValueError(f"recipe field {field} {size}: {name} cannot take {size}x{size} images ({reason}); valid: the model's input size ({zoo.model_card(name).input_size}) or another it can take") from None


def check_fits(config: TrialConfig, recipe: Recipe, device: torch.device, memory_share: float) -> None:
    """Refuse, from the architecture's description, a run that cannot fit its share of the device
    (the machine's available memory, or the GPU's free memory, times the share of concurrent trials)."""
    size = zoo.estimate(config.model, **config.model_overrides)
    if size is None:
        return
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory_bytes()
    budget = free * memory_share
    if size.training_bytes(recipe.batch_size) > budget:
        raise ValueError(f"{config.model} {config.model_overrides}: {size.describe(recipe.batch_size)}, over this run's share of the {device.type} memory ({budget / 2**30:,.1f} GiB); lower batch_size or the size")


def read_summary(out: Path) -> dict[str, Any] | None:
    """A run's summary, or None before it has one; a file that is not what a run wrote is named."""
    path = out / "summary.json"
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not a summary written by search.train ({str(error).splitlines()[0][:80]}); delete it to finish the run again") from None
    if not isinstance(summary, dict) or "status" not in summary:
        raise ValueError(f"{path} is not a summary written by search.train (no status); delete it to finish the run again")
    return summary


def strict_json(value: Any) -> Any:
    """NaN and infinity become null: summary.json stays JSON that every reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class EpochResult:
    train_loss: float = float("nan")
    train_error: float = float("nan")
    seconds: float = 0.0  # training only: compiling graphs is accounted apart
    diverged_at: dict[str, int] | None = None
    interrupted: EpochPosition | None = None


class StoppedOutsideTheLoop(BaseException):
    """SIGTERM or Ctrl-C while a run loads its data or writes its summary, where the training
    loop is not there to stop at a step: there is nothing to checkpoint (the last one on disk is
    the run's latest state), so the command ends as interrupted, as it would within the loop.
    A BaseException, so that no ``except Exception`` on the way swallows it."""


@contextlib.contextmanager
def stopped_anywhere() -> Iterator[None]:
    """SIGTERM and Ctrl-C raise ``StoppedOutsideTheLoop`` in this process while the body runs
    (the training loop installs its own ``Preemption`` within it). A loader worker forked in the
    meantime keeps the default behaviour: it is its parent's to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            if signum == signal.SIGINT:
                signal.default_int_handler(signum, frame)  # torch's worker loop ends quietly on it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise StoppedOutsideTheLoop(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Preemption:
    """SIGTERM (Slurm preemption, a spot instance's notice) or Ctrl-C asks the loop to stop at the
    next step boundary; the run then checkpoints where it is and exits as interrupted. Handlers
    can only be installed from the main thread; a Ray trial runs in another, and is asked through
    ``stop_file`` instead: its search driver writes that file when it is told to stop."""

    LOOK_EVERY_SECONDS = 1.0  # a stat per step would cost a shared filesystem a round trip per step

    def __init__(self, stop_file: Path | None = None) -> None:
        self.signalled = False
        self.signum: int | None = None  # the signal that asked, if one did
        self.stop_file = stop_file
        self.next_look = 0.0
        self.previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        if not self.signalled and self.stop_file is not None and time.monotonic() >= self.next_look:
            self.next_look = time.monotonic() + self.LOOK_EVERY_SECONDS
            self.signalled = self.stop_file.exists()
        return self.signalled

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.signalled, self.signum = True, signum

    def pass_on(self) -> None:
        """After the loop: a signal that came once it had looked for the last time (during the last
        epoch's evaluation and checkpoint) goes to the handler outside it, as if it came now."""
        if self.signum is not None:
            signal.raise_signal(self.signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


@dataclass
class Run:
    """One run's data on its device and the objects it trains."""

    config: TrialConfig
    recipe: Recipe
    dataset: Dataset
    train_split: Split | FileSplit  # in memory: on the device, as is val_split (no copy per epoch)
    val_split: Split | FileSplit | None  # None: no validation split (recipe val_size 0)
    device: torch.device
    precision: str
    state: TrainingState
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its compiled wrapper
    # What evaluates: ``forward`` for one rank; with several, the model without
    # DistributedDataParallel, which only the leader runs (DDP's forward would wait for the others).
    evaluate_forward: Callable[[torch.Tensor], torch.Tensor]
    normalize: Normalize
    steps_per_epoch: int
    workers: int = 0  # loader workers of the streaming path
    train_order: EpochBatches | None = None  # the streaming loader's batches, set each epoch
    train_loader: DataLoader | None = None
    world: World = World()  # the ranks this run trains in (search.distributed)

    @classmethod
    def build(cls, config: TrialConfig, recipe: Recipe, dataset: Dataset, device: torch.device, precision: str, workers: int = 0, world: World = World()) -> Run:
        train_split = dataset.train
        if recipe.train_subset and recipe.train_subset < len(train_split):
            train_split = train_split.take(torch.arange(recipe.train_subset))
        if len(train_split) < recipe.batch_size:  # losses and rates are per image seen: count whole batches
            raise ValueError(f"the training split holds {len(train_split)} images, fewer than one batch of {recipe.batch_size}; lower batch_size")
        torch.manual_seed(config.seed)  # every rank builds the same weights
        model = build_model(config, dataset.num_classes, "cpu").to(device=device, memory_format=torch.channels_last)
        if world.size > 1 and recipe.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.zoo_data = data_config(dataset, recipe)  # saved with the weights: they classify an image file alone
        # One fused kernel per step on CUDA (dozens of small launches otherwise); foreach on the CPU.
        optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0,
            weight_decay=recipe.weight_decay, fused=True if device.type == "cuda" else None,
        )
        steps_per_epoch = len(train_split) // recipe.batch_size  # the ragged last batch is dropped
        scheduler = build_scheduler(optimizer, recipe, recipe.epochs * steps_per_epoch, getattr(model, "depth", 0))
        generator = torch.Generator(device=device).manual_seed(config.seed)
        normalize = Normalize(dataset.mean, dataset.std, device, channels_last=True)
        state = TrainingState(model, optimizer, scheduler, generator)
        configure_kernels(device, precision, config.deterministic)
        trained = model if world.size == 1 else DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        forward = compiled(trained, config.compile, config.deterministic)
        run = cls(
            config, recipe, dataset, train_split, dataset.val, device, precision, state, forward, forward if world.size == 1 else model, normalize, steps_per_epoch, workers,
            world=world,
        )
        if isinstance(train_split, FileSplit):
            run.train_order = EpochBatches()
            files = TrainingFiles(train_split, recipe.augment, recipe.image_size, dataset.rest_size, recipe.flip, recipe.lighting, config.seed, config.decode)
            run.train_loader = stream_loader(files, run.train_order, max(1, workers), device, persistent=True)
        else:
            run.train_split = Split(train_split.images.to(device), train_split.labels.to(device))
            run.val_split = Split(dataset.val.images.to(device), dataset.val.labels.to(device)) if dataset.val is not None else None
        return run

    def batches(self, epoch: int, order: torch.Tensor, first_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(views, labels, colour shifts) of each step from ``first_step``, on the device. Lazy:
        a step's random draws happen when it is asked for, after the loop's stop check."""
        recipe, generator, world = self.recipe, self.state.generator, self.world
        if self.train_loader is None:
            for step in range(first_step, self.steps_per_epoch):
                index = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
                # The whole global batch's augmentation is drawn on every rank (the same random
                # numbers as one process would draw); each rank trains on its part.
                views, shifts = augment_at_rest(self.train_split.images[index], recipe, generator)
                yield world.part(views), world.part(self.train_split.labels[index]), world.part(shifts)
            return
        assert self.train_order is not None
        per_sample = recipe.augment in BOX_AUGMENTATIONS  # cropped by the workers from (seed, epoch, index): each rank loads its part
        self.train_order.set(epoch, order, recipe.batch_size, first_step, self.steps_per_epoch, world if per_sample else World())
        for batch in on_device(iter(self.train_loader), self.device):
            if per_sample:  # the workers' flips and colours
                yield flip_where(batch.images, batch.flips), batch.labels, batch.shifts if recipe.lighting else None
            else:
                views, shifts = augment_at_rest(batch.images, recipe, generator)
                yield world.part(views), world.part(batch.labels), world.part(shifts)

    def train_epoch(self, epoch: int, faults: Faults, bar: ProgressBar, resume_at: EpochPosition | None, stop: Preemption, save_position: Callable[[EpochPosition], None] | None = None, checkpoint_seconds: float = math.inf) -> EpochResult:
        """One pass over the training split (or the rest of an interrupted one); within it,
        ``save_position`` checkpoints where it is every ``checkpoint_seconds`` (a long epoch)."""
        recipe, state = self.recipe, self.state
        started, compiling_before = time.perf_counter(), seconds_compiling()
        if resume_at is not None:
            order, loss_sum, wrong, first = resume_at.order, resume_at.loss_sum, resume_at.wrong, resume_at.step
            if not self.world.leader:  # the saved sums are the whole world's: counted once, by the leader
                loss_sum, wrong = torch.zeros_like(loss_sum), torch.zeros_like(wrong)
        else:
            order = torch.randperm(len(self.train_split), generator=state.generator, device=self.device)
            loss_sum = torch.zeros((), device=self.device)
            wrong = torch.zeros((), device=self.device, dtype=torch.int64)
            first = 0
        before = resume_at.seconds if resume_at is not None else 0.0
        first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)  # first step with a non-finite loss
        batches, saved_at = self.batches(epoch, order, first), time.monotonic()
        world = self.world
        for step in range(first, self.steps_per_epoch):
            faults.stall((epoch - 1) * self.steps_per_epoch + step + 1, stop)
            # Every rank stops, or checkpoints, at the same step: a request or the leader's clock.
            stopping = saving = False
            if world.size == 1 or (step - first) % AGREEMENT_STEPS == 0:
                stopping, saving = world.any(stop.requested, world.leader and save_position is not None and step > first and time.monotonic() - saved_at >= checkpoint_seconds, device=self.device)
            if stopping:  # at a step boundary: nothing of this step is lost
                return EpochResult(interrupted=self.position(epoch, step, order, loss_sum, wrong, before + self._seconds_since(started, compiling_before)))
            if saving and save_position is not None:
                save_position(self.position(epoch, step, order, loss_sum, wrong, before + self._seconds_since(started, compiling_before)))
                saved_at = time.monotonic()
            images, labels, shifts = next(batches)
            if self.config.compile == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # a new step: CUDA graphs may reuse the last one's buffers
            with autocast(self.device, self.precision):
                logits = self.forward(self.normalize(images, shifts))
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
            global_step = (epoch - 1) * self.steps_per_epoch + step + 1
            loss = faults.corrupt_loss(loss, global_step)
            # Remembered on the device (reading the loss would make the host wait for the GPU at
            # every step), looked at every few steps and at the end of the epoch.
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), global_step, first_bad)
            if (step + 1) % DIVERGENCE_LOOK_STEPS == 0 or step + 1 == self.steps_per_epoch:
                bad_step = int(world.earliest(first_bad))
                if bad_step >= 0:
                    return EpochResult(diverged_at={"epoch": epoch, "step": bad_step, "seen_at_step": global_step})
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.scheduler.step()
            loss_sum += loss.detach() * len(labels)
            wrong += (logits.detach().argmax(1) != labels).sum()
            bar.update(epoch, step + 1, self.steps_per_epoch, loss.detach())
        seen = self.steps_per_epoch * recipe.batch_size
        train_loss, train_error = float(world.total(loss_sum)) / seen, int(world.total(wrong)) / seen  # waits for the device's last step
        return EpochResult(train_loss, train_error, seconds=before + self._seconds_since(started, compiling_before))

    def position(self, epoch: int, step: int, order: torch.Tensor, loss_sum: torch.Tensor, wrong: torch.Tensor, seconds: float) -> EpochPosition:
        """Where an epoch stands, with the whole world's running sums (only the leader writes it)."""
        return EpochPosition(epoch, step, order, self.world.total(loss_sum), self.world.total(wrong), seconds)

    @staticmethod
    def _seconds_since(started: float, compiling_before: float) -> float:
        return time.perf_counter() - started - (seconds_compiling() - compiling_before)

    def evaluate(self, split: Split | FileSplit) -> float:
        recipe = self.recipe
        return evaluate(self.evaluate_forward, split, self.normalize, recipe.eval_batch_size, self.device, self.precision, recipe.eval_crop, recipe.eval_crops, max(1, self.workers))


def configure_kernels(device: torch.device, precision: str, deterministic: bool = False) -> None:
    """Set, for every run, the process-wide kernel choices it depends on (a Ray worker runs many
    runs): cuDNN picks its fastest convolution for the fixed batch shape, unless the run asks for
    the same bits every time (cuDNN's timed choice may differ from one process to the next, and
    atomics add in any order: torch's deterministic algorithms instead); and fp32 means fp32 on
    CUDA (TF32 matrix units only under bf16, for the few products autocast leaves in fp32)."""
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC[0])
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        torch.backends.cudnn.allow_tf32 = precision != "fp32"


def kernel_settings(device: torch.device) -> dict[str, Any]:
    settings: dict[str, Any] = {"cudnn_benchmark": None, "tf32": None, "deterministic": torch.are_deterministic_algorithms_enabled()}
    if device.type == "cuda":
        settings |= {"cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}}
    return settings


def train(
    config: TrialConfig,
    out: str | Path,
    *,
    report: Reporter | None = None,
    log: Callable[[str], None] | None = print_flushed,
    progress: bool = False,
    dataset: Dataset | None = None,
    lease_wait: float = 0.0,
    memory_share: float = 1.0,
    stop_file: Path | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``out`` (resuming what is there) and return its summary.

    ``report(row)`` is called after each epoch's checkpoint is on disk; the search forwards it to
    Ray Tune. In a process group it is called on every rank (Ray Train's report is a collective),
    the leader's with the epoch's row, the others' with the epoch alone. ``dataset`` skips
    loading when the caller holds it already. One process owns ``out`` at a time; another is
    refused, after waiting ``lease_wait`` seconds for a stale owner. Once ``stop_file`` exists
    the run checkpoints at the next step and returns as interrupted.

    In a process group (``torchrun``, Ray Train's workers) every rank calls this; the leader owns
    ``out`` and says and writes (``search.distributed``).
    """
    check_writable_folder(out, "--out")  # as given: resolved, a link to nothing would lead anywhere
    out = Path(out).resolve()
    threads = torch.get_num_threads()
    # Checks, identity and loading list a data folder once between them (_train forgets the listing).
    with walking_once():
        recipe = validate(config, memory_share)
        world = current_world()
        check_world(recipe, world, resolve_device(config.device))
        say = (log or (lambda _: None)) if world.leader else (lambda _: None)
        # Per-rank BatchNorm statistics make a run on several ranks another computation.
        identity = {**config.identity(), **({"world_size": world.size} if world.size > 1 else {})}
        finished = read_summary(out)
        if finished is not None and finished.get("status") in FINISHED:
            check_same_finished_run(finished, identity, out)
            say(f"{out} already holds this run, finished ({finished['status']}); not retraining")
            return finished
        try:
            with callers_determinism(), Lease(out, "search.train run", wait=lease_wait, say=say) if world.leader else contextlib.nullcontext():
                return _train(config, recipe, identity, out, report, say, progress and world.leader, dataset, Preemption(stop_file), memory_share, world)
        finally:
            torch.set_num_threads(threads)  # a caller's process (a Ray worker, a notebook) keeps its setting


def _train(config: TrialConfig, recipe: Recipe, identity: dict[str, Any], out: Path, report: Reporter | None, say: Callable[[str], None], progress: bool, dataset: Dataset | None, preemption: Preemption, memory_share: float, world: World) -> dict[str, Any]:
    state_path = checkpoint_path(out)
    saved, note = latest_state(state_path)
    if saved is not None:
        check_same_run(saved, identity, state_path)
    device = resolve_device(config.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", torch.cuda.current_device())  # each rank's, set by its launcher
    # "auto" was decided when the run started: a resume on another machine keeps the data path.
    data_path = dataset.path if dataset is not None else (saved or {}).get("data_path") or choose_data_path(recipe.data_path, config.data, recipe.eval_resize, memory_share)
    threads = config.threads or torch.get_num_threads()
    # More threads than cores only makes them wait for each other: a planned command carries the
    # planning machine's count, and may run on a smaller one.
    usable = available_cpus()
    capped = threads > usable
    if capped:
        say(f"--threads {threads}: this process may use {usable} CPU(s); running {usable} thread(s)")
        threads = usable
    workers, training_threads = loader_workers(threads, device) if data_path == "stream" else (0, threads)
    if config.threads is not None or capped:
        torch.set_num_threads(training_threads)
    if dataset is None:
        dataset = load_dataset(config.data, data_seed=config.data_seed, val_size=recipe.val_size, test_size=recipe.test_size, exact_sizes=asked_carves(config.recipe_overrides), rest_size=recipe.eval_resize, path=data_path, workers=workers)
    forget_walks()
    run = Run.build(config, recipe, dataset, device, resolve_precision(recipe.precision, device), workers, world)
    if world.leader:
        out.mkdir(parents=True, exist_ok=True)
    done = Progress(precision=run.precision, data_path=dataset.path)
    if saved is not None:
        done = run.state.restore(saved, device)
        del saved  # the weights and optimizer state now live in the run
        if note:
            say(note)
        within = f", step {done.in_epoch.step} of epoch {done.in_epoch.epoch}" if done.in_epoch else ""
        say(f"resuming {out.name} from epoch {done.epoch}/{recipe.epochs}{within}")
        # "auto" was decided when the run started: a resume on another machine keeps it.
        run.precision = done.precision = done.precision or run.precision
        configure_kernels(device, run.precision, config.deterministic)
    if not done.git_commits or done.git_commits[-1] != code_commit():
        done.git_commits.append(code_commit())
    compile_before, compiling_at_start = done.compile_seconds, seconds_compiling()

    def account_compiling() -> None:
        done.compile_seconds = compile_before + seconds_compiling() - compiling_at_start

    started, wall_before, resumed = time.perf_counter(), done.wall_seconds, done.epoch > 0 or done.in_epoch is not None
    diverged_at = None
    bar = ProgressBar(progress)
    faults = injected_faults().of_run(resumed)
    run.state.model.train()
    resume_at, done.in_epoch = done.in_epoch, None
    def save_position(position: EpochPosition) -> None:  # a checkpoint within a long epoch
        if not world.leader:
            return
        done.in_epoch, done.wall_seconds = position, wall_before + time.perf_counter() - started
        account_compiling()
        run.state.save(state_path, identity, done)
        done.in_epoch = None

    with preemption:
        for epoch in range(done.epoch + 1, recipe.epochs + 1):
            resume_here = resume_at if resume_at and resume_at.epoch == epoch else None
            result = run.train_epoch(epoch, faults, bar, resume_here, preemption, save_position, 60 * config.checkpoint_minutes)
            bar.clear()
            if result.interrupted is not None:
                done.in_epoch, done.wall_seconds = result.interrupted, wall_before + time.perf_counter() - started
                account_compiling()
                if world.leader:
                    run.state.save(state_path, identity, done)
                say(f"interrupted at epoch {epoch}, step {result.interrupted.step}/{run.steps_per_epoch}: checkpoint written to {state_path}; run the same command to resume")
                return {"status": INTERRUPTED, "epoch": epoch, "step": result.interrupted.step, "checkpoint": str(state_path)}
            diverged_at = result.diverged_at
            if diverged_at is not None:
                say(f"epoch {epoch}: loss is not finite from step {diverged_at['step']} (seen at step {diverged_at['seen_at_step']}); stopping as diverged")
                break
            train_loss, train_error, seconds = result.train_loss, result.train_error, result.seconds
            seen = run.steps_per_epoch * recipe.batch_size
            done.train_seconds += seconds
            done.images_seen += seen
            if not world.leader:  # the leader evaluates and writes; this rank goes on to the next epoch
                done.epoch = epoch
                if report is not None:
                    report({"epoch": epoch})
                faults.after_checkpoint(epoch, resumed)
                continue
            val_accuracy = run.evaluate(run.val_split) if run.val_split is not None else None
            row = {
                "epoch": epoch, "train_loss": train_loss, "train_error": train_error, "val_accuracy": val_accuracy,
                "lr": run.state.optimizer.param_groups[0]["lr"], "seconds": seconds, "images_per_second": seen / seconds,
            }
            done.rows.append(row)
            done.epoch = epoch
            if val_accuracy is not None and val_accuracy > done.best_val_accuracy:
                done.best_val_accuracy, done.best_epoch = val_accuracy, epoch
                zoo.save(run.state.model, out / "model_best.safetensors")
            done.wall_seconds = wall_before + time.perf_counter() - started
            account_compiling()
            faults.before_checkpoint(epoch, state_path)
            run.state.save(state_path, identity, done)
            write_metrics(out, done.rows)
            say(
                f"epoch {epoch}/{recipe.epochs}  loss {train_loss:.4f}  train err {train_error:.4f}  "
                f"val {'-' if val_accuracy is None else f'{val_accuracy:.4f}'}  lr {row['lr']:.4g}  {seconds:.1f}s  {row['images_per_second']:.0f} img/s"
            )
            if report is not None:
                report(row)
            faults.after_checkpoint(epoch, resumed)
    preemption.pass_on()

    if not world.leader:
        return {"status": "diverged" if diverged_at is not None else "completed", "rank": world.rank, "world_size": world.size}
    faults.before_summary()
    summary = summarise(run, out, done, diverged_at, lambda: wall_before + time.perf_counter() - started, account_compiling, identity["data"])
    say(f"{summary['status']}: val {'-' if summary['val_accuracy'] is None else summary['val_accuracy']}, test {summary['test_accuracy']} ({summary['wall_seconds']:.0f} s) -> {out}")
    return summary


def link_best_to_final(out: Path) -> None:
    final, best = out / "model_final.safetensors", out / "model_best.safetensors"
    try:
        zoo.write_atomically(best, lambda temporary: (temporary.unlink(missing_ok=True), os.link(final, temporary)))
    except OSError:
        pass  # a filesystem without hard links keeps the two copies


def summarise(run: Run, out: Path, done: Progress, diverged_at: dict[str, int] | None, wall_clock: Callable[[], float], account_compiling: Callable[[], None], data_fingerprint: str) -> dict[str, Any]:
    """Write the final weights, metrics and ``summary.json``; return the summary. The wall time
    and compile time are read after the last measurement (inference compiles its own graph)."""
    config, dataset, rows = run.config, run.dataset, done.rows
    status = "diverged" if diverged_at is not None else "completed"
    write_metrics(out, rows)
    zoo.save(run.state.model, out / "model_final.safetensors")
    # The last epoch is the best, or the run kept no validation to choose by: one file, two names.
    if rows and (done.best_epoch == len(rows) or run.val_split is None):
        link_best_to_final(out)
    recipe = run.recipe
    measured = zoo.complexity(run.state.model, input_size=recipe.image_size)  # the MACs it trained at
    test_accuracy = run.evaluate(dataset.test) if status == "completed" and dataset.test is not None else None
    # Batch 256 (the figure the leaderboards plot), or the recipe's smaller evaluation batch: a
    # recipe that evaluates 64 at a time asks for a cheap measurement, as tests and tiny runs do.
    inference_batch = min(INFERENCE_BATCH, run.recipe.eval_batch_size)
    inference_rate = inference_throughput(run.evaluate_forward, run.normalize, recipe.eval_crop, run.device, run.precision, inference_batch)
    account_compiling()
    summary = {
        "status": status,
        "model": config.model,
        "model_overrides": config.model_overrides,
        "val_accuracy": rows[-1]["val_accuracy"] if rows else None,
        "best_val_accuracy": done.best_val_accuracy if rows and run.val_split is not None else None,
        "test_accuracy": test_accuracy,
        "train_error": rows[-1]["train_error"] if rows else None,
        "train_loss": rows[-1]["train_loss"] if rows else None,
        "architecture": zoo.describe(config.model, **config.model_overrides).columns(),
        "params": measured.params,
        "macs": measured.macs,
        "epochs": len(rows),
        "wall_seconds": wall_clock(),  # compiling included
        "images_per_second": done.images_seen / done.train_seconds if done.train_seconds else None,  # compiling excluded
        "compile": config.compile,
        "compile_seconds": done.compile_seconds,
        "decode": config.decode,  # where JPEG training crops were decoded (a streamed run's)
        "inference_images_per_second": inference_rate,
        "inference_batch_size": inference_batch,
        "peak_memory_bytes": peak_memory_bytes(run.device),
        "data": config.data,
        "data_name": dataset.name,
        "data_fingerprint": data_fingerprint,  # the identity's, from the listing taken at the start
        "splits": {**dataset.sizes(), "train_used": len(run.train_split)},
        "image_size": recipe.image_size,  # the training crop's side
        "eval_size": {"resize": recipe.eval_resize, "crop": recipe.eval_crop, "crops": recipe.eval_crops},
        "data_path": dataset.path,
        "loader_workers": run.workers,
        "world_size": run.world.size,  # data-parallel workers (ranks); BatchNorm synced across them when the recipe's sync_bn
        "val_source": dataset.val_source,
        "test_source": dataset.test_source,
        "data_seed": config.data_seed,
        "seed": config.seed,
        **record(run.device, run.precision),
        # The code that started the run, and every commit that trained a part of it: a resume may
        # run newer code than the start did (the checkpoint's format travels across commits).
        "git_commit": done.git_commits[0],
        "git_commits": done.git_commits,
        **kernel_settings(run.device),
        "budget": config.budget,
        "recipe": run.recipe.to_dict(),
        "diverged_at": diverged_at,
        "command": config.command(out),
    }
    zoo.write_atomically(out / "summary.json", json.dumps(strict_json(summary), indent=2, sort_keys=True, allow_nan=False) + "\n")
    drop_resumable_state(out)
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


TRAIN_FLAGS = ("model", "data", "budget", "family", "seed", "data_seed", "threads", "device", "compile", "deterministic", "decode", "checkpoint_minutes", "plugins", "out")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # --config FILE: its keys are these flags and any override; flags on the command line win.
    try:
        config_path, from_file = config_option(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = OneLineParser(
        prog="python -m search.train",
        description="Train one zoo variant. Any other --name value is a zoo override (e.g. --shortcut B) or a recipe field (e.g. --epochs 5).",
        epilog=f"recipe fields: {', '.join('--' + f.replace('_', '-') for f in recipe_fields())}. "
        f"Model options (ResNets; python -m zoo list for the models): {', '.join('--' + o.replace('_', '-') for o in zoo.model_options('resnet20'))}; a bottleneck block adds {', '.join('--' + o.replace('_', '-') for o in sorted(set(zoo.model_options('resnet50')) - set(zoo.model_options('resnet20'))))}.",
    )
    parser.add_argument("--config", metavar="FILE", help="settings from a YAML or JSON file (these flags and any override); flags given here win")
    parser.add_argument("--model", required="model" not in from_file)
    parser.add_argument("--data", required="data" not in from_file, help="cifar10, cifar100, synthetic, or a folder (CIFAR layout or ImageFolder)")
    parser.add_argument("--budget", choices=BUDGET_NAMES, default="quick", help="the recipe's scale, for the model's family (the tables in README: Training one variant)")
    parser.add_argument("--family", choices=FAMILIES, default=None, help="whose budgets the recipe comes from (default: the model's; a search passes its space's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all this process may use, which is also the most it runs)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA where visible, else the CPU")
    parser.add_argument("--compile", default="off", help=f"torch.compile mode: {', '.join(COMPILE_MODES)} (how it runs, not what it computes: a run resumes under another mode)")
    parser.add_argument("--deterministic", action="store_true", help="only kernels that give the same bits every time: a run on CUDA repeats bitwise on the same card and software (cuDNN's timed choice of convolution is given up; the GPU check measures what that costs; the CPU's kernels are deterministic already); how it runs, not what it computes")
    parser.add_argument("--decode", default=TrialConfig.decode, help=f"where a streamed run decodes its JPEG training crops: {', '.join(DECODE_PLACES)} (workers: Pillow in the loader workers; device: batched on the training device, nvJPEG on CUDA; how it runs, not what it computes)")
    parser.add_argument("--checkpoint-minutes", type=float, default=TrialConfig.checkpoint_minutes, help="within an epoch, checkpoint at least this often (a long ImageNet epoch; a killed run resumes from there)")
    parser.add_argument("--plugins", type=comma_list, default=[], metavar="MODULE[,MODULE]", help="your modules to import first: the blocks they register (@zoo.register) can then be named")
    parser.add_argument("--out", required="out" not in from_file)
    try:
        parser.set_file_defaults({key: value for key, value in from_file.items() if key in TRAIN_FLAGS}, f"--config {config_path}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    # The file's overrides first, then the command line's: a later --key wins in parse_words.
    extra = config_words({key: value for key, value in from_file.items() if key not in TRAIN_FLAGS}) + extra
    try:
        import_plugins(args.plugins)  # before any name is looked up: theirs are registered by now
        zoo.model_card(args.model)
        model_overrides, recipe_overrides = typed_overrides(args.model, parse_words(extra), TRAIN_FLAGS)
        config = TrialConfig(
            model=args.model,
            data=args.data,
            budget=args.budget,
            model_overrides=model_overrides,
            recipe_overrides=recipe_overrides,
            seed=args.seed,
            data_seed=args.data_seed,
            threads=available_cpus() if args.threads is None else args.threads,  # 0 is refused, not read as 'all'
            device=args.device,
            compile=args.compile,
            deterministic=args.deterministic,
            decode=args.decode,
            checkpoint_minutes=args.checkpoint_minutes,
            family=args.family,
            plugins=tuple(args.plugins),
        )
        with stopped_anywhere():
            world = join_launcher_world(args.device)  # under torchrun: one rank of its process group
            try:
                summary = train(config, Path(args.out), progress=True)
            except BaseException:
                leave_world()
                raise
    except StoppedOutsideTheLoop as stop:
        print(f"{stop} outside the training loop (loading data or writing the summary): nothing is lost, the run goes on from its last checkpoint (or its start); run the same command to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a lost mount: the last checkpoint on disk is whole
        print(os_error_line(error, "any checkpoint it wrote is intact: fix this and run the same command to resume"), file=sys.stderr)
        return EXIT_IO_ERROR
    code = EXIT_INTERRUPTED if summary["status"] == INTERRUPTED else 0 if summary["status"] == "completed" else 1
    if world.size > 1:
        exit_world(code)  # every rank together, past the C++ teardown
    return code


if __name__ == "__main__":
    sys.exit(exit_status(main))
