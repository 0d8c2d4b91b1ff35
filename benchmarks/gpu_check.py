"""The prepared GPU check: how fast a trial trains on one GPU, how many trials to pack on it, and
the quick-budget `shortcuts` grid on the full CIFAR-10 training split, in one command that ends
within its time limit.

    python benchmarks/gpu_check.py --out DIR --data .data/cifar10-jpeg          # on a GPU, < 9 min
    python benchmarks/gpu_check.py --out DIR --steps grid                        # later: the grid only
    python benchmarks/gpu_check.py --out DIR --dry-run                           # every step, tiny, on the CPU

Steps (``--steps``, in this order):
1. ``throughput``: training images/s of ResNet-20 and ResNet-56 through search.train's own step
   (``search.train.Run``: augmentation, normalisation and divergence watch included), eager
   fp32, eager bf16 and compiled bf16 (channels_last throughout), beside a bare loop on the same
   card (the same model and optimizer on ready-made tensors); and ResNet-20 in eager bf16 with
   ``--deterministic``'s kernels, what that option costs. Every eager row first, then the
   compiled ones (ResNet-20 at batch 512 first, the goal's row), each only while the check is in
   its first 40% and the longest compile so far still fits: a slow first compile on a new card
   does not starve the steps after it.
2. ``packing``: aggregate training images/s of 1, 2, 4 and 8 trials at once on the GPU (separate
   processes running the same step, timed together after a barrier), for ResNet-20 at the paper
   recipe's batch 128 and the quick recipe's 256, and ResNet-56 at 128.
3. ``decode``: JPEG decodes/s of ~500x375 photos the check writes (benchmarks/data_stream.py's):
   batched nvJPEG on the GPU (``torchvision.io.decode_jpeg``) against the CPU loader workers
   that the streaming path decodes with, all cores but one (seconds; the dry run measures the
   CPU side only); then the streaming path's 224-px training batches ready on the GPU with
   ``--decode workers`` and ``--decode device``. It decides whether streamed ImageNet trials
   should decode on the GPU by default.
4. ``resume``: ResNet-20 killed after its first epoch and resumed on the device, against the same
   run uninterrupted (side by side), with torch's default kernels and with ``--deterministic``:
   each resumed run must finish; on CUDA the default pair within a tolerance (its kernels are not
   deterministic) and the deterministic pair bitwise; on the CPU both bitwise. The grid's
   continuation relies on it: a trial stopped at the time limit resumes from its checkpoint in
   the next run.
5. ``grid``: the `shortcuts` grid (depth 20 and 56 x A/B/C/none, the VGG-16-BN baseline, 3 seeds:
   27 trials) at the quick budget, planned with ``search.run --plan`` into ``--experiment``
   (continued when it holds the same grid, refused when it holds another: finished trials are not re-run; by default the GPU campaign's first
   item, so ``python -m search.campaign run`` goes on from where the check stopped), run by ``--run-planned`` on the
   GPU with the packing step's best trial count, and collected. Its ResNet-20 (A) trials are the
   quick recipe's measurement: seconds to 85% and 90% validation, final accuracy, wall time.

Writes into ``--out``: ``environment.json``, ``throughput.csv``, ``packing.csv``, ``decode.csv``,
``resume.csv``, ``quick_recipe.csv`` and ``check.md`` (all of them as tables), each as soon as its step ends;
the grid's experiment stays in ``--experiment``. It needs torch, timm, pandas and matplotlib,
never Ray or Optuna (a bare PyTorch image). It stops launching grid trials when their estimate
no longer fits, stops the running ones with a checkpoint at ``--minutes``, and exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zoo  # noqa: E402
from leaderboards import markdown_table, write_page  # noqa: E402
from search.campaign import CAMPAIGN, DEFAULT_ROOT  # noqa: E402
from search.compilation import seconds_compiling  # noqa: E402
from search.config import TrialConfig  # noqa: E402
from search.data import DataError, Dataset, FileSplit, load_dataset  # noqa: E402
from search.measure import synchronize  # noqa: E402
from search.planned import Rebundler, collect, place_in_repository, plan_unless_planned, run_planned  # noqa: E402
from search.provenance import autocast, record  # noqa: E402
from search.stream import DECODE_PLACES  # noqa: E402
from search.testing import EXIT_STATUS, FAULT_VARIABLE, Faults  # noqa: E402
from search.train import Preemption, ProgressBar, Run, available_cpus, configure_kernels  # noqa: E402
from zoo.commandline import OneLineParser, exit_status  # noqa: E402
from zoo.files import check_writable_folder  # noqa: E402

STEPS = ("throughput", "packing", "decode", "resume", "grid")
GPU_EXPERIMENT = f"{DEFAULT_ROOT}/{CAMPAIGN[0].name}"  # the campaign's first item: the campaign goes on from the check
# A run resumed on CUDA against the same run uninterrupted: nondeterministic kernels (atomics,
# cuDNN's algorithm choice) make two runs of one seed differ a little; a lost optimizer or
# generator state, or a schedule restarted, differs by far more.
RESUME_TOLERANCE = {"val_accuracy": 0.03, "train_loss": 0.05}  # absolute; relative
# The resume step's two kernel choices: torch's defaults (cuDNN's timed choice, atomics), within the
# tolerance on CUDA; and search.train --deterministic, which must resume bitwise there too.
RESUME_KERNELS = {"default": [], "deterministic": ["--deterministic"]}
# Compiled throughput rows start only in the check's first 40%: Inductor's first compile on a
# new card may take minutes, and the steps after this one (the grid most) must not pay for it.
COMPILE_SHARE = 0.4


@dataclass(frozen=True)
class Scale:
    """Sizes of one check: the GPU's, or the dry run's (every step, seconds on a CPU)."""

    device: str
    models: tuple[tuple[str, dict[str, Any]], ...]  # (zoo name, overrides), ResNet-20 first
    batches: tuple[int, ...]  # throughput batches: the paper's and a large one
    packing: tuple[tuple[str, dict[str, Any], int], ...]  # (model, overrides, batch)
    trial_counts: tuple[int, ...]
    compile_mode: str  # the compiled rows' torch.compile mode
    subset: int  # training images a throughput epoch uses
    seconds: float  # timed training per measurement
    reserve: float  # seconds a measurement needs left before it starts
    grid: dict[str, Any]  # the grid's search settings (as search.run's flags give them)
    photos: int  # JPEGs the decode step writes and decodes
    resume: tuple[str, ...]  # search.train's flags for the resume step's two-epoch ResNet-20


GPU = Scale(
    device="cuda",
    models=(("resnet20", {}), ("resnet56", {})),
    batches=(128, 512),
    packing=(("resnet20", {}, 128), ("resnet20", {}, 256), ("resnet56", {}, 128)),
    trial_counts=(1, 2, 4, 8),
    compile_mode="default",
    subset=20480,
    seconds=4.0,
    reserve=60.0,
    grid={"budget": "quick", "seeds": 3, "gpus_per_trial": 1.0},
    photos=512,
    resume=("--budget", "quick", "--epochs", "2", "--train-subset", "10000"),
)
DRY_RUN = Scale(
    device="cpu",
    models=(("resnet20", {"depth": 8}),),
    batches=(32,),
    packing=(("resnet20", {"depth": 8}, 32),),
    trial_counts=(1, 2),
    compile_mode="aot_eager",  # Inductor would spend the dry run's minute compiling
    subset=32,
    seconds=0.2,
    reserve=5.0,
    grid={"budget": "smoke", "trials": 2, "baselines": False, "recipe": {"epochs": 1, "train_subset": 64, "val_size": 32, "test_size": 32, "eval_batch_size": 32}},
    photos=16,
    resume=("--budget", "smoke", "--depth", "8", "--epochs", "2", "--train-subset", "64", "--val-size", "32", "--test-size", "32", "--batch-size", "32"),
)


class Clock:
    def __init__(self, minutes: float) -> None:
        self.start, self.limit = time.monotonic(), minutes * 60

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------------
# Step 1 and 2: training rate through search.train's step


def build_run(dataset: Dataset, model: str, overrides: dict[str, Any], batch: int, precision: str, compile_mode: str, device: str, subset: int, deterministic: bool = False) -> Run:
    recipe = {"batch_size": batch, "precision": precision, "train_subset": max(subset, batch), "epochs": 1000, "crop_padding": 4, "flip": True}
    config = TrialConfig(model=model, data="synthetic", budget="quick", model_overrides=overrides, recipe_overrides=recipe, device=device, compile=compile_mode, deterministic=deterministic)
    return Run.build(config, config.recipe(), dataset, torch.device(device), precision)


def timed_epochs(run: Run, seconds: float, barrier: tuple[Path, int] | None = None) -> tuple[int, float]:
    """One warm-up epoch (kernel choice, compiling), then whole epochs until ``seconds`` have
    passed; returns (images, training seconds). With a barrier, the timed part starts once every
    process of the measurement has warmed up."""
    epoch = 1
    stop, faults, bar = Preemption(), Faults(), ProgressBar(False)
    run.train_epoch(epoch, faults, bar, None, stop)
    if barrier is not None:
        folder, count = barrier
        (folder / str(os.getpid())).touch()
        while len(list(folder.iterdir())) < count:
            time.sleep(0.01)
    images, spent = 0, 0.0
    while spent < seconds:
        epoch += 1
        result = run.train_epoch(epoch, faults, bar, None, stop)
        images += run.steps_per_epoch * run.recipe.batch_size
        spent += result.seconds
    return images, spent


def bare_loop_rate(model_name: str, overrides: dict[str, Any], batch: int, device: str, seconds: float) -> float:
    """The same model and optimizer on ready-made tensors: no data, augmentation or bookkeeping."""
    target = torch.device(device)
    configure_kernels(target, "bf16")  # torch's default kernels, whatever the run measured before chose
    model = zoo.create_model(model_name, **overrides).to(device=target, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True if target.type == "cuda" else None)
    images = torch.randn(batch, 3, 32, 32, device=target).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=target)

    def step() -> None:
        with autocast(target, "bf16"):
            loss = F.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    synchronize(target)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        steps += 10
        synchronize(target)
    return steps * batch / (time.perf_counter() - start)


def throughput(scale: Scale, dataset: Dataset, clock: Clock, out: Path) -> pd.DataFrame:
    """Every configuration eager first (seconds each), then compiled, the goal's ResNet-20 at the
    large batch first: a compile's time on a new card is unknown, so compiled rows start only
    while the check is in its first COMPILE_SHARE and the longest compile so far (the reserve,
    before any) still fits."""
    rows: list[dict[str, Any]] = []
    # (label, precision, deterministic kernels); the last only for the first model (ResNet-20):
    # what search.train --deterministic costs, in seconds of the device's time.
    eager = (("eager fp32", "fp32", False), ("eager bf16", "bf16", False), ("eager bf16 deterministic", "bf16", True))
    configurations = [(model, overrides, batch) for model, overrides in scale.models for batch in scale.batches]
    bare: dict[tuple[str, int], float] = {}

    def measure(model: str, overrides: dict[str, Any], batch: int, label: str, precision: str, compile_mode: str, deterministic: bool = False) -> None:
        run = build_run(dataset, model, overrides, batch, precision, compile_mode, scale.device, scale.subset, deterministic)
        compiling = seconds_compiling()
        images, spent = timed_epochs(run, scale.seconds)
        rows.append({"model": model, "batch": batch, "mode": label, "images_per_second": images / spent, "compile_seconds": seconds_compiling() - compiling})
        say(f"  {model} batch {batch} {label}: {images / spent:,.0f} images/s (bare loop {bare[(model, batch)]:,.0f})")
        zoo.write_atomically(out / "throughput.csv", pd.DataFrame(rows).to_csv(index=False))

    for model, overrides, batch in configurations:
        bare[(model, batch)] = bare_loop_rate(model, overrides, batch, scale.device, scale.seconds)
        rows.append({"model": model, "batch": batch, "mode": "bare loop bf16", "images_per_second": bare[(model, batch)], "compile_seconds": 0.0})
        for label, precision, deterministic in eager:
            if deterministic and (model, overrides) != scale.models[0]:
                continue
            if clock.left() < scale.reserve + 5 * scale.seconds:
                say(f"  throughput: time is short, {model} batch {batch} {label} not measured")
                continue
            measure(model, overrides, batch, label, precision, "off", deterministic)
    compiled_label = f"compiled bf16 ({scale.compile_mode})"
    compile_error: Exception | None = None
    for model, overrides, batch in sorted(configurations, key=lambda c: (scale.models.index((c[0], c[1])), -c[2])):
        longest = max((row["compile_seconds"] for row in rows if row["mode"] == compiled_label), default=scale.reserve)
        if clock.elapsed() + longest > COMPILE_SHARE * clock.limit or clock.left() < scale.reserve + 5 * scale.seconds + longest:
            say(f"  throughput: {model} batch {batch} compiled not measured: a compile takes up to {longest:.0f} s here, past the check's first {COMPILE_SHARE:.0%} (the later steps keep their time)")
            continue
        try:
            measure(model, overrides, batch, compiled_label, "bf16", scale.compile_mode)
        except Exception as error:  # noqa: BLE001 - a compiler missing on the card's image, say
            # The eager rows and their ratios are still written; the step reports the failure.
            say(f"  throughput: {model} batch {batch} compiled failed ({type(error).__name__}); no more compiled rows")
            compile_error = error
            break
    # The table reads by configuration, its modes in one order, whatever order they were measured in.
    place = {(model, batch): index for index, (model, _, batch) in enumerate(configurations)}
    modes = ["bare loop bf16", *(label for label, _, _ in eager), compiled_label]
    rows.sort(key=lambda row: (place[(row["model"], row["batch"])], modes.index(row["mode"])))
    frame = pd.DataFrame(rows)
    bare_rates = frame[frame["mode"] == "bare loop bf16"].set_index(["model", "batch"])["images_per_second"]
    frame["vs_bare_loop"] = [rate / bare_rates[(m, b)] for m, b, rate in zip(frame["model"], frame["batch"], frame["images_per_second"])]
    zoo.write_atomically(out / "throughput.csv", frame.to_csv(index=False))
    if compile_error is not None:
        raise compile_error
    return frame


def packing_worker(spec: dict[str, Any]) -> None:
    """One of N concurrent trials of the packing step (run as a subprocess of the check)."""
    torch.set_num_threads(spec["threads"])
    dataset = load_dataset(spec["data"], data_seed=0)
    results = []
    for index, (model, overrides, batch) in enumerate(spec["packing"]):
        run = build_run(dataset, model, overrides, batch, spec["precision"], "off", spec["device"], spec["subset"])
        folder = Path(spec["barrier"]) / str(index)
        folder.mkdir(parents=True, exist_ok=True)
        images, spent = timed_epochs(run, spec["seconds"], (folder, spec["trials"]))
        results.append({"images": images, "seconds": spent})
        del run
        if spec["device"] == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(results), flush=True)


def packing(scale: Scale, data: str, clock: Clock, out: Path) -> pd.DataFrame:
    rows = []
    cores = available_cpus()
    precision = "bf16" if scale.device == "cuda" else "fp32"
    for trials in scale.trial_counts:
        if clock.left() < 1.5 * scale.reserve:
            say(f"  packing: time is short, {trials} trials at once not measured")
            break
        with tempfile.TemporaryDirectory() as barrier:
            spec = {"data": data, "packing": scale.packing, "precision": precision, "device": scale.device, "subset": scale.subset, "seconds": scale.seconds, "barrier": barrier, "trials": trials, "threads": max(1, cores // trials)}
            workers = [subprocess.Popen([sys.executable, __file__, "--packing-worker", json.dumps(spec)], stdout=subprocess.PIPE, text=True) for _ in range(trials)]
            outputs = [json.loads(w.communicate(timeout=max(60.0, clock.left()))[0].strip().splitlines()[-1]) for w in workers]
        for index, (model, overrides, batch) in enumerate(scale.packing):
            aggregate = sum(o[index]["images"] / o[index]["seconds"] for o in outputs)
            rows.append({"model": model, "batch": batch, "trials": trials, "aggregate_images_per_second": aggregate})
            say(f"  {trials} x {model} batch {batch}: {aggregate:,.0f} images/s together")
        frame = pd.DataFrame(rows)
        one = frame[frame["trials"] == 1].set_index(["model", "batch"])["aggregate_images_per_second"]
        frame["vs_one_trial"] = [rate / one[(m, b)] for m, b, rate in zip(frame["model"], frame["batch"], frame["aggregate_images_per_second"])]
        zoo.write_atomically(out / "packing.csv", frame.to_csv(index=False))
    return pd.read_csv(out / "packing.csv") if rows else pd.DataFrame()


# ---------------------------------------------------------------------------------------------
# Step 3: JPEG decode on the device and in the loader workers


def decode(scale: Scale, out: Path) -> pd.DataFrame:
    """JPEG decodes/s: nvJPEG batched on the GPU against the CPU loader workers, on the same files;
    then the streaming path's 224-px training batches/s on the device with each ``--decode`` place."""
    from benchmarks.data_stream import decode_rates, resbench_rate, write_photos

    workers, batch = max(1, available_cpus() - 1), 64
    stream_batch = min(batch, scale.photos // 2)  # two steps an epoch at least
    device = torch.device(scale.device)
    with tempfile.TemporaryDirectory() as folder:
        write_photos(Path(folder), scale.photos)
        files = sorted(str(path) for path in Path(folder).rglob("*.jpg"))
        gpu, cpu = decode_rates(files, workers, min(batch, len(files)), on_gpu=scale.device == "cuda")
        split = FileSplit(files, torch.zeros(len(files), dtype=torch.int64), 224)
        streamed = {place: resbench_rate(split, 224, stream_batch, workers, scale.seconds, device, place) for place in DECODE_PLACES}
    rows = [{"decoder": f"{workers} CPU loader worker(s) (torchvision.io.decode_jpeg)", "images": len(files), "images_per_second": round(cpu, 1)}]
    if gpu is not None:
        rows.append({"decoder": f"nvJPEG on the GPU, batches of {batch}", "images": len(files), "images_per_second": round(gpu, 1)})
    batched = "nvJPEG" if device.type == "cuda" else "torchvision's CPU decoder"
    rows.append({"decoder": f"streamed 224-px batches of {stream_batch} on the {device.type}, --decode workers ({workers} loader worker(s))", "images": len(files), "images_per_second": round(streamed["workers"], 1)})
    rows.append({"decoder": f"streamed 224-px batches of {stream_batch} on the {device.type}, --decode device (batched {batched})", "images": len(files), "images_per_second": round(streamed["device"], 1)})
    frame = pd.DataFrame(rows)
    zoo.write_atomically(out / "decode.csv", frame.to_csv(index=False))
    say(f"  decode: {', '.join(f'{row.decoder} {row.images_per_second:,.0f}/s' for row in frame.itertuples())}")
    return frame


# ---------------------------------------------------------------------------------------------
# Step 4: a run killed and resumed on the device


def resume(scale: Scale, data: str, clock: Clock, out: Path) -> pd.DataFrame:
    """Per epoch, a ResNet-20 run killed after epoch 1 and resumed beside the same run
    uninterrupted, once with torch's default kernels and once ``--deterministic`` (the runs of
    both at once, each with a quarter of the cores). Fails when a run does not end as it should,
    when a pair that must be bitwise is not (on the CPU both; on CUDA the deterministic one), or
    when the default pair on CUDA leaves the tolerance; either pair's failure leaves the other's
    rows in the table."""
    if clock.left() < 2 * scale.reserve:
        raise RuntimeError(f"time is short ({clock.left():.0f} s left): not measured")
    cores = available_cpus()
    failures: dict[str, str] = {}  # kernels -> how its runs failed
    with tempfile.TemporaryDirectory() as folder:

        def command(name: str, kernels: str) -> list[str]:
            flags = ["--model", "resnet20", "--data", data, *scale.resume, "--seed", "0", "--device", scale.device, *RESUME_KERNELS[kernels]]
            return [sys.executable, "-m", "search.train", *flags, "--threads", str(max(1, cores // 4)), "--out", str(Path(folder) / f"{kernels}-{name}")]

        options = {"cwd": REPO, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
        started: list[subprocess.Popen[str]] = []

        def start(name: str, environment: dict[str, str] | None = None) -> dict[str, subprocess.Popen[str]]:
            """This run of each kernel choice whose runs have not failed yet."""
            processes = {kernels: subprocess.Popen(command(name, kernels), env={**os.environ, **(environment or {})}, **options) for kernels in RESUME_KERNELS if kernels not in failures}
            started.extend(processes.values())
            return processes

        def finish(processes: dict[str, subprocess.Popen[str]], expected: int, what: str) -> None:
            for kernels, process in processes.items():
                _, errors = process.communicate(timeout=300)
                if process.returncode != expected:
                    failures.setdefault(kernels, f"{what} exited {process.returncode}, not {expected}: {errors.strip().splitlines()[-1][:200] if errors.strip() else ''}")

        uninterrupted = start("uninterrupted")
        try:
            finish(start("resumed", {FAULT_VARIABLE: "exit_after_epoch:1"}), EXIT_STATUS, "the run killed after epoch 1")
            finish(start("resumed"), 0, "the resumed run")
            finish(uninterrupted, 0, "the uninterrupted run")
        finally:
            for process in started:  # a failure above: nothing of this step outlives it
                if process.poll() is None:
                    process.kill()
                    process.wait()
        finished = [kernels for kernels in RESUME_KERNELS if kernels not in failures]
        metrics = {(kernels, name): pd.read_csv(Path(folder) / f"{kernels}-{name}" / "metrics.csv") for kernels in finished for name in ("resumed", "uninterrupted")}
    columns = ["epoch", "train_loss", "val_accuracy", "lr"]
    problems = [f"{kernels} kernels: {failure}" for kernels, failure in failures.items()]
    tables = []
    for kernels in finished:
        resumed, whole = metrics[(kernels, "resumed")][columns], metrics[(kernels, "uninterrupted")][columns]
        table = resumed.merge(whole, on="epoch", suffixes=("_resumed", "_uninterrupted"))
        table.insert(0, "kernels", kernels)
        table["val_accuracy_difference"] = table["val_accuracy_resumed"] - table["val_accuracy_uninterrupted"]
        table["train_loss_relative_difference"] = table["train_loss_resumed"] / table["train_loss_uninterrupted"] - 1
        tables.append(table)
        last = table.iloc[-1]
        say(f"  resume, {kernels} kernels: epoch {int(last['epoch'])} val accuracy {last['val_accuracy_resumed']:.4f} resumed vs {last['val_accuracy_uninterrupted']:.4f} uninterrupted")
        if len(table) != len(whole) or not (table["lr_resumed"] == table["lr_uninterrupted"]).all():
            problems.append(f"{kernels} kernels: the resumed run's epochs or learning rates are not the uninterrupted run's")
        elif scale.device == "cpu" or kernels == "deterministic":
            if not resumed.equals(whole):
                problems.append(f"{kernels} kernels on the {scale.device}: the resumed run is not bitwise the uninterrupted one")
        elif abs(last["val_accuracy_difference"]) > RESUME_TOLERANCE["val_accuracy"] or abs(last["train_loss_relative_difference"]) > RESUME_TOLERANCE["train_loss"]:
            problems.append(f"{kernels} kernels: the resumed run left the tolerance {RESUME_TOLERANCE}: {last.to_dict()}")
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if tables:
        zoo.write_atomically(out / "resume.csv", frame.to_csv(index=False))
    if problems:
        raise RuntimeError("; ".join(problems))
    return frame


# ---------------------------------------------------------------------------------------------
# Step 5: the grid, planned, run on the GPU, collected


def best_trial_count(packing_table: pd.DataFrame | None, scale: Scale) -> int:
    """The packing step's best aggregate for ResNet-20 at the quick recipe's batch (else the most measured)."""
    if packing_table is None or packing_table.empty:
        return max(scale.trial_counts)
    rows = packing_table[packing_table["model"] == "resnet20"]
    batch = 256 if (rows["batch"] == 256).any() else rows["batch"].max()
    rows = rows[rows["batch"] == batch]
    return int(rows.loc[rows["aggregate_images_per_second"].idxmax(), "trials"])


def grid(scale: Scale, data: str, experiment: Path, jobs: int, clock: Clock, out: Path, progress: Callable[[], object] = lambda: None) -> pd.DataFrame:
    """Plan the grid (unless planned), run what is unfinished until the time is nearly up (then
    stop the running trials with a checkpoint, as SIGTERM does), collect, write the page.
    ``progress`` is called whenever the runner has news (a trial launched or ended)."""
    planned = plan_unless_planned("shortcuts", data=data, out=str(experiment), **scale.grid)
    if planned is not None:
        say(f"  planned {len(planned.trials)} trials into {experiment}")
    gpus = ["0"] if scale.device == "cuda" else None
    stop = threading.Timer(max(1.0, clock.left() - 0.5 * scale.reserve), os.kill, (os.getpid(), signal.SIGTERM))
    stop.start()
    try:
        run_planned(experiment, jobs, gpus, time_budget=max(1.0, clock.left() - 0.75 * scale.reserve), say=lambda line: (say(f"  {line}"), progress()))
    finally:
        stop.cancel()
    results = collect(experiment)
    write_page(experiment)
    zoo.write_atomically(out / "quick_recipe.csv", quick_recipe(experiment, results).to_csv(index=False))
    return results


def quick_recipe(experiment: Path, results: pd.DataFrame) -> pd.DataFrame:
    """The ResNet-20 (A) trials: seconds of training to 85% and 90% validation, the final
    accuracy, and the run's wall time (compiling included) and its compile time."""
    rows = []
    chosen = results[(results["model"] == "resnet20") & (results["shortcut"] == "A") & (results["status"] == "completed")]
    for _, row in chosen.iterrows():
        directory = experiment / "trials" / row["trial_id"]
        metrics = pd.read_csv(directory / "metrics.csv")
        summary = json.loads((directory / "summary.json").read_text())
        elapsed = metrics["seconds"].cumsum()
        reached = {f"train_seconds_to_{int(goal * 100)}": (float(elapsed[metrics["val_accuracy"] >= goal].iloc[0]) if (metrics["val_accuracy"] >= goal).any() else None) for goal in (0.85, 0.90)}
        rows.append({"trial_id": row["trial_id"], "seed": row["seed"], "val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"], **reached, "wall_seconds": summary["wall_seconds"], "compile_seconds": summary.get("compile_seconds"), "hardware": summary["hardware"]})
    return pd.DataFrame(rows)


def grid_section(results: pd.DataFrame, out: Path) -> str:
    quick = pd.read_csv(out / "quick_recipe.csv") if (out / "quick_recipe.csv").stat().st_size > 1 else pd.DataFrame()
    counts = results["status"].value_counts().to_dict()
    return f"{len(results)} trials: {counts}\n\n### Quick recipe, ResNet-20 (A)\n\n" + (markdown(quick) if not quick.empty else "no finished ResNet-20 (A) trial yet\n")


# ---------------------------------------------------------------------------------------------


def shared_memory_gib() -> float | None:
    """Free space in /dev/shm, where loader workers hand their batches over: a container's default
    (Docker: 64 MiB) is too small for streamed 224-px batches, and a worker then dies of a bus error."""
    try:
        return round(shutil.disk_usage("/dev/shm").free / 2**30, 2)
    except OSError:
        return None


def markdown(frame: pd.DataFrame) -> str:
    return markdown_table(list(frame.columns), frame.values.tolist()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for the check's tables (required)")
    parser.add_argument("--data", default=".data/cifar10-jpeg", help="the CIFAR-10 folder (ImageFolder train/ or cifar-10-batches-py/)")
    parser.add_argument("--experiment", help=f"the grid's planned experiment, continued when it holds the same grid (default {GPU_EXPERIMENT}: the GPU campaign's first item, see search.campaign; a dry run's default is OUT-grid beside OUT, so its tiny trials never sit where a GPU run would continue them)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated: {', '.join(STEPS)}")
    parser.add_argument("--minutes", type=float, default=8.5, help="the whole check ends by then")
    parser.add_argument("--dry-run", action="store_true", help="every step at a tiny size on the CPU, synthetic data (CI)")
    parser.add_argument("--bundle", metavar="DIR", help="also pack the tables and the grid's experiment into tar.gz parts of <= 15 MiB in DIR")
    parser.add_argument("--packing-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.packing_worker:
        packing_worker(json.loads(args.packing_worker))
        return 0
    if not args.out:
        parser.error("--out is required")
    steps = [s for s in args.steps.split(",") if s]
    scale, data = (DRY_RUN, "synthetic") if args.dry_run else (GPU, args.data)
    clock = Clock(args.minutes)
    started = time.monotonic()
    # Every input is checked before anything is written: a bad one costs a line, not device minutes.
    try:
        for option, folder in (("--out", args.out), ("--bundle", args.bundle)):
            if folder:
                check_writable_folder(folder, option)
        if unknown := [s for s in steps if s not in STEPS]:
            raise ValueError(f"unknown step {unknown[0]!r}; valid: {', '.join(STEPS)}")
        if not (math.isfinite(args.minutes) and args.minutes > 0):
            raise ValueError(f"--minutes must be a positive number, got {args.minutes}")
        if scale.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("no CUDA device here; the check is for a GPU machine (--dry-run runs it on the CPU)")
        dataset = load_dataset(data, data_seed=0)  # decoded once here; every later process reads the cache
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    experiment = Path(args.experiment).resolve() if args.experiment else out.with_name(f"{out.name}-grid") if args.dry_run else Path(GPU_EXPERIMENT).resolve()
    out.mkdir(parents=True, exist_ok=True)
    environment = {**record(torch.device(scale.device)), "cpu_cores": os.cpu_count(), "cuda": torch.version.cuda, "shared_memory_gib": shared_memory_gib(), "dry_run": args.dry_run, "steps": steps}
    zoo.write_atomically(out / "environment.json", json.dumps(environment, indent=2) + "\n")
    say(f"gpu check on {environment['hardware']} (torch {torch.__version__}, {environment['shared_memory_gib']} GiB in /dev/shm), steps: {', '.join(steps)}, {args.minutes} min")
    say(f"  data {dataset.name}: {dataset.sizes()} ready in {time.monotonic() - started:.0f} s")
    sections = [f"# GPU check: {environment['hardware']}\n", f"torch {torch.__version__}, CUDA {environment['cuda']}, {environment['recorded_at']}, commit {environment['git_commit']}\n"]
    failed = []
    # Archive names are paths from the repository root: `tar xz` there puts the grid back where
    # the campaign and `publish` look (experiments/campaign/shortcuts by default) and each check's
    # tables in a folder of their own, never over an earlier check's.
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - clock.elapsed()))
    tables = f"experiments/gpu-check/{stamp}"
    grid_place = place_in_repository(experiment, f"{tables}-grid")
    rebundler = Rebundler({tables: out, grid_place: experiment}, Path(args.bundle)) if args.bundle else None

    def bring_back(at_once: bool = True) -> None:
        """check.md as far as the check got and, with --bundle, the bundle: after every step, and
        within the grid at most once a minute, so a kill (the device's time limit) still brings
        back every step and trial that had finished."""
        zoo.write_atomically(out / "check.md", "\n".join(sections))
        if rebundler is not None and at_once:
            rebundler.now()
        elif rebundler is not None:
            rebundler.maybe()

    def step(name: str, title: str, measure: Callable[[], str]) -> None:
        """One step; its failure is written down and the next step still runs (GPU minutes are scarce)."""
        try:
            sections.extend([title, measure()])
        except Exception as error:  # noqa: BLE001 - any failure of one step
            failed.append(name)
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"
            say(f"  {name} failed: {message}")
            sections.extend([title, f"failed: {message}\n"])
        bring_back()

    if "throughput" in steps:
        step("throughput", "## Training images/s through search.train's step\n", lambda: markdown(throughput(scale, dataset, clock, out)))
    if "packing" in steps:
        step("packing", "## Trials packed on one device\n", lambda: markdown(packing(scale, data, clock, out)))
    if "decode" in steps:
        step("decode", "## JPEG decode: the GPU against the CPU loader workers\n", lambda: markdown(decode(scale, out)))
    if "resume" in steps:
        step("resume", "## A run killed after epoch 1 and resumed, beside it uninterrupted\n", lambda: markdown(resume(scale, data, clock, out)))
    if "grid" in steps:
        measured = pd.read_csv(out / "packing.csv") if (out / "packing.csv").exists() else None
        jobs = best_trial_count(measured, scale)
        step("grid", f"## The shortcuts grid ({jobs} trials at once)\n", lambda: grid_section(grid(scale, data, experiment, jobs, clock, out, lambda: bring_back(at_once=False)), out))
    if rebundler is None or not rebundler.parts:  # no step ran (--steps ""): the tables and environment still go back
        bring_back()
    if rebundler is not None:
        parts = rebundler.parts
        say(f"  bundled into {len(parts)} part(s) in {args.bundle} ({sum(p.stat().st_size for p in parts) / 2**20:.1f} MiB); `cat bundle.tar.gz.part* | tar xz` at the repository root unpacks the tables into {tables} and the grid into {grid_place}")
    say(f"done in {clock.elapsed():.0f} s: {out / 'check.md'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
