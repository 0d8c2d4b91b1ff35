"""Probes of the two explanations the ResNet story rests on, measured instead of repeated.

    python -m search.probe gradients --models plain20,plain56,plain110,resnet20,resnet56,resnet110,preresnet110
        [--data DATA] [--batches N] [--batch-size B] [--seed S] [--out DIR]
    python -m search.probe lesion --runs RUN_DIR[,RUN_DIR...] [--draws N] [--out DIR]
    python -m search.probe responses --runs RUN_DIR[,RUN_DIR...] [--images N] [--out DIR]
    python -m search.probe responses|lesion --runs NEW_RUN[,...] --out DIR --add

``gradients``: at initialisation, on real batches, the norm of the loss gradient reaching each
unit's input (a "highway" keeps the first units' norm near the last's) and the correlation of
those gradients between an input and a slightly perturbed copy (Balduzzi et al.'s shattered
gradients). ``lesion``: a trained run's validation accuracy with each residual branch deleted in
turn and with k random branches deleted (Veit et al.); a plain net's unit becomes the identity
where its shape allows. ``responses``: a trained run's layer responses (He et al. section 4.2, Fig.
7): the standard deviation of every 3x3 layer's output after its BN and before the ReLU or the
addition, on validation images. Each writes a table (``gradients.csv`` / ``lesion.csv`` /
``responses.csv``) and a ``probe.json`` beside it; ``python -m leaderboards`` renders the pages
from them. ``--add`` probes only the runs given and adds them to the table already at ``--out``
(a run of the same name is replaced): a seed trained later joins its table without the earlier
nets, whose checkpoints may be gone, being probed again. The added nets must be trained as the
table's were and probed with the same settings; ``probe.json`` records each addition apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from leaderboards.schema import read_table
from search.augment import Normalize, center_crop
from search.data import DataError, Dataset, Split, load_dataset, walking_once
from search.measure import evaluate, split_batches
from search.provenance import DEVICES, now, record, resolve_device, resolve_precision
from search.stream import loader_workers
from search.train import available_cpus, read_summary
from zoo.commandline import OneLineParser, comma_list, exit_status
from zoo.files import check_writable_folder, read_json
from zoo.plugins import import_plugins

DEFAULT_MODELS = "plain20,plain56,plain110,resnet20,resnet56,resnet110,preresnet110"
DEFAULT_BATCH_SIZE = 64
PERTURBATION = 0.05  # std of the noise added to a (normalised) input for the shattering probe
CPU = torch.device("cpu")


def residual_units(model: nn.Module, what: str) -> list[zoo.ResidualUnit]:
    if not isinstance(model, zoo.ResNet):
        raise ValueError(f"{what} is not a ResNet-family model (the probe needs residual units)")
    return model.units()


def check_resnet(name: str) -> None:
    """Refuse a model that has no residual units, by name, before any data is loaded."""
    if zoo.model_card(name).kind != "resnet":
        raise ValueError(f"{name} is not a ResNet-family model (the probe needs residual units)")


# ---------------------------------------------------------------------------------------------
# Gradient flow


def unit_input_gradients(model: zoo.ResNet, images: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """d(mean cross-entropy)/d(input of each unit), for one batch, in unit order."""
    captured: list[torch.Tensor] = []

    def keep(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        inputs[0].retain_grad()
        captured.append(inputs[0])

    handles = [unit.register_forward_pre_hook(keep) for unit in model.units()]
    try:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
    finally:
        for handle in handles:
            handle.remove()
    return [tensor.grad.detach() for tensor in captured]


def gradient_probe(model_names: list[str], dataset: Dataset, batches: int, batch_size: int, seed: int) -> pd.DataFrame:
    """One row per (model, unit): gradient norm and shattering correlation, mean and std over batches."""
    normalize = Normalize(dataset.mean, dataset.std, torch.device("cpu"), channels_last=False)
    if batch_size < 2 or batches * batch_size > len(dataset.val):
        raise ValueError(f"{batches} batches of {batch_size} need {batches * batch_size} validation images; the split has {len(dataset.val)}")
    rows = []
    for name in model_names:
        torch.manual_seed(seed)
        model = zoo.create_model(name, num_classes=dataset.num_classes)
        units = residual_units(model, name)
        model.train()  # batch statistics, as in training; running stats are never used here
        noise = torch.Generator().manual_seed(seed)
        norms, correlations = [], []
        for b in range(batches):
            images = normalize(dataset.val.images[b * batch_size : (b + 1) * batch_size])
            labels = dataset.val.labels[b * batch_size : (b + 1) * batch_size]
            nearby = images + PERTURBATION * torch.randn(images.shape, generator=noise)
            here, there = unit_input_gradients(model, images, labels), unit_input_gradients(model, nearby, labels)
            norms.append([float(g.norm()) for g in here])
            correlations.append([float(F.cosine_similarity((a - a.mean()).flatten(1), (c - c.mean()).flatten(1)).mean()) for a, c in zip(here, there)])
        norm_frame, correlation_frame = pd.DataFrame(norms), pd.DataFrame(correlations)
        for index, unit in enumerate(units):
            rows.append({
                "model": name, "family": zoo.describe(model).design, "depth": model.depth, "unit": index,
                "position": index / max(1, len(units) - 1), "changes_shape": unit.changes_shape,
                "grad_norm": norm_frame[index].mean(), "grad_norm_std": norm_frame[index].std(ddof=1),
                "correlation": correlation_frame[index].mean(), "correlation_std": correlation_frame[index].std(ddof=1),
                "batches": batches, "batch_size": batch_size,
                # per-batch values, so pages can pair models batch by batch
                "correlation_by_batch": json.dumps([round(v, 6) for v in correlation_frame[index]]),
                "grad_norm_by_batch": json.dumps([v for v in norm_frame[index]]),
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Lesions


def lesion_probe(run: Path, draws: int, seed: int, max_k: int = 5, images: int | None = None, device: torch.device = CPU) -> pd.DataFrame:
    """Validation accuracy of a trained run with branches deleted: each one alone, then k at
    random; on the first ``images`` validation images (default all), evaluated on ``device``."""
    summary = finished_run(run)
    model = zoo.load(run / "model_final.safetensors").eval()
    units = residual_units(model, str(run))
    recipe = summary["recipe"]
    dataset, workers = run_dataset(summary, device)
    normalize = Normalize(dataset.mean, dataset.std, device, channels_last=True)
    model = model.to(device, memory_format=torch.channels_last)
    precision = resolve_precision(summary.get("precision", "fp32"), device)
    split = dataset.val if images is None else dataset.val.take(torch.arange(min(images, len(dataset.val))))
    if isinstance(split, Split):  # on the device once: every lesion evaluates the same images
        split = Split(split.images.to(device), split.labels.to(device))

    def accuracy(lesioned: list[int]) -> float:
        for index, unit in enumerate(units):
            unit.lesion(index in lesioned)
        try:
            return evaluate(model, split, normalize, 500, device, precision, recipe.get("eval_crop"), recipe.get("eval_crops", 1), workers)
        finally:
            for unit in units:
                unit.lesion(False)

    described = zoo.describe(model)
    base = {"run": run.name, "model": summary["model"], "label": described.label, "family": described.design, "depth": model.depth, "seed": summary["seed"], "num_classes": dataset.num_classes, "images": len(split)}
    rows = [{**base, "kind": "none", "k": 0, "units": "", "draw": 0, "changes_shape": False, "status": "ok", "accuracy": accuracy([])}]
    for index, unit in enumerate(units):
        if unit.shortcut is None and unit.changes_shape:
            rows.append({**base, "kind": "single", "k": 1, "units": str(index), "draw": 0, "changes_shape": True, "status": "refused: no identity fits a shape change", "accuracy": None})
            continue
        rows.append({**base, "kind": "single", "k": 1, "units": str(index), "draw": 0, "changes_shape": unit.changes_shape, "status": "ok", "accuracy": accuracy([index])})
    keeps_shape = [i for i, unit in enumerate(units) if not unit.changes_shape]
    chooser = random.Random(seed)
    for k in range(1, min(max_k, len(keeps_shape)) + 1):
        for draw in range(draws):
            chosen = sorted(chooser.sample(keeps_shape, k))
            rows.append({**base, "kind": "random", "k": k, "units": ",".join(map(str, chosen)), "draw": draw, "changes_shape": False, "status": "ok", "accuracy": accuracy(chosen)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Layer responses


def response_layers(model: zoo.ResNet) -> list[tuple[str, nn.Module]]:
    """(name, module whose output is the response) of every 3x3 conv layer, in network order.

    The response is the output after the layer's BN, before any ReLU or addition: the BN
    registered right after the conv in the same module. A full pre-activation unit has none (its
    next BN belongs to the next layer's pre-activation, and the last conv feeds the addition), so
    there, as in the sequel's reading of Fig. 7, the conv's own output is the response.
    """
    preactivated = {id(m) for unit in model.units() if unit.pre_activation == "bn_relu" for m in unit.modules()}
    preactivated |= {id(model.conv1)} if "bn1" not in model.stem_names else set()
    layers = []
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for index, (name, child) in enumerate(children):
            if not (isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3)):
                continue
            following = children[index + 1][1] if index + 1 < len(children) else None
            takes_bn = isinstance(following, nn.BatchNorm2d) and id(child) not in preactivated
            full_name = f"{parent_name}.{name}" if parent_name else name
            layers.append((full_name, following if takes_bn else child))
    return layers


def layer_responses(model: zoo.ResNet, images: torch.Tensor, batch_size: int) -> list[tuple[str, float]]:
    """(layer name, std of its response over every element of ``images``' responses), in network order.

    Accumulated in float64 over batches; the model is evaluated as it would be (eval mode).
    """
    layers = response_layers(model)
    totals = {name: torch.zeros(3, dtype=torch.float64, device=images.device) for name, _ in layers}  # count, sum, sum of squares

    def accumulate(name: str) -> Any:
        def hook(_: nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            values = output.detach().double()
            totals[name] += torch.stack([values.new_tensor(float(values.numel())), values.sum(), values.square().sum()])
        return hook

    handles = [module.register_forward_hook(accumulate(name)) for name, module in layers]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    stds = []
    for name, _ in layers:
        count, total, squares = totals[name].tolist()
        mean = total / count
        stds.append((name, math.sqrt(max(squares / count - mean * mean, 0.0))))
    return stds


def response_probe(run: Path, images: int, device: torch.device = CPU) -> pd.DataFrame:
    """One row per 3x3 layer of a trained run: its response std on ``images`` validation images,
    in fp32 on ``device`` (TF32 off on CUDA: a std is a sum over every element of a response)."""
    summary = finished_run(run)
    model = zoo.load(run / "model_final.safetensors").eval().to(device)
    residual_units(model, str(run))
    recipe = summary["recipe"]
    dataset, workers = run_dataset(summary, device)
    count = min(images, len(dataset.val))
    normalize = Normalize(dataset.mean, dataset.std, device, channels_last=False)
    first = dataset.val.take(torch.arange(count))
    crop = recipe.get("eval_crop", dataset.rest_size)
    views = torch.cat([center_crop(batch, crop) for batch, _ in split_batches(first, 250, device, workers)])  # what evaluation sees
    with full_fp32(device):
        responses = layer_responses(model, normalize(views), batch_size=250)
    described = zoo.describe(model)
    base = {
        "run": run.name, "model": summary["model"], "label": described.label, "family": described.design,
        "depth": model.depth, "seed": summary["seed"], "data_seed": summary["data_seed"], "budget": summary["budget"],
        "num_classes": dataset.num_classes, "val_accuracy": summary.get("val_accuracy"), "val_images": len(dataset.val), "images": count,
    }
    order = sorted(range(len(responses)), key=lambda i: -responses[i][1])
    ranks = {index: rank for rank, index in enumerate(order)}
    return pd.DataFrame([{**base, "layer": index + 1, "name": name, "std": std, "rank": ranks[index] + 1} for index, (name, std) in enumerate(responses)])


@contextlib.contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """TF32 off on CUDA for the block (convolutions default to it there), restored after."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def run_dataset(summary: dict[str, Any], device: torch.device = CPU) -> tuple[Dataset, int]:
    """A trained run's data, split as it was, on the path it trained on (an ImageNet-sized folder
    streams from its files, evaluation included), and the loader workers that decode it for
    ``device``."""
    recipe, path = summary["recipe"], summary.get("data_path") or "memory"
    workers = loader_workers(available_cpus(), device)[0] if path == "stream" else 1
    # The carves as they were made, by their recorded sizes: a size the run asked for is not
    # recorded as asked, and the budget's rule would carve another validation set from it.
    carved = {split: size for split, size in summary.get("splits", {}).items() if summary.get(f"{split}_source") == "carved"}
    sizes = {"val_size": carved.get("val", recipe["val_size"]), "test_size": carved.get("test", recipe["test_size"])}
    with walking_once():
        dataset = load_dataset(summary["data"], data_seed=summary["data_seed"], **sizes, exact_sizes=carved, rest_size=recipe.get("eval_resize", 32), path=path, workers=workers)
    return dataset, workers


# What trained each net, from its summary.json: the probe's own commit and hardware say nothing of
# the runs it read, which may come from another commit or another machine (a GPU campaign's).
TRAINED_BY = ("git_commit", "hardware", "device", "precision", "torch_version")


def runs_provenance(probe: str, runs: dict[str, dict[str, Any]], table: pd.DataFrame) -> dict[str, Any]:
    """What a probe records about the trained runs of ``table`` (``runs``: each run's folder and
    summary): the training setup they share (the first run's; ``finished_runs`` checked the others
    against it) and, per run, what trained it."""
    summary = next(iter(runs.values()))
    return {
        "probe": probe, "data": summary["data_name"], "data_seed": summary["data_seed"], "splits": summary["splits"], "budget": summary["budget"],
        "recipe": summary["recipe"], "images": int(table["images"].max()), "trained": trained_by(runs),
    }


def trained_by(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run (its folder and summary), what trained it."""
    return [{"run": run, **{key: summary.get(key) for key in TRAINED_BY}} for run, summary in runs.items()]


def write_probe(out: Path, table: pd.DataFrame, recorded: dict[str, Any]) -> Path:
    """``out/PROBE.csv`` and ``out/probe.json`` (each written whole), what ``python -m
    leaderboards`` renders; ``recorded`` names the probe and how it was run."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{recorded['probe']}.csv"
    zoo.write_atomically(path, table.to_csv(index=False))
    zoo.write_atomically(out / "probe.json", json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    return path


def probed_by(command: str, started_at: str, device: torch.device) -> dict[str, Any]:
    """How this probe process ran, for probe.json."""
    # The commit is the code's when the process started (search.provenance.CODE_COMMIT): a probe
    # rewriting its table in the repository (leaderboards/) does not make its own commit dirty.
    return {**record(device), "command": command, "started_at": started_at}


def existing_probe(out: Path, probe: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and probe.json that ``--add`` extends."""
    table_path, settings_path = out / f"{probe}.csv", out / "probe.json"
    if not (table_path.exists() and settings_path.exists()):
        raise ValueError(f"--add: {out} holds no {probe} probe ({table_path.name} and probe.json) to add to; valid: an --out an earlier `search.probe {probe}` wrote, or no --add")
    recorded = read_json(settings_path, "a probe's record (probe.json, written by search.probe)")
    table = read_table(table_path)
    # Probes written before these keys were recorded: what their tables show is what they used.
    if "data_seed" not in recorded and "data_seed" in table.columns and table["data_seed"].nunique() == 1:
        recorded["data_seed"] = int(table["data_seed"].iloc[0])
    if probe == "lesion" and "draws" not in recorded:
        recorded["draws"] = int(table.loc[table["kind"] == "random", "draw"].max()) + 1
    return table, recorded


def check_addition(out: Path, recorded: dict[str, Any], runs: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
    """Refuse new runs trained or probed unlike the nets of the table at ``out``."""
    table_name = out / f"{recorded['probe']}.csv"
    if "data_seed" not in recorded:
        raise ValueError(f"--add: {out / 'probe.json'} does not record which validation carve (data_seed) its nets were probed on; probe every run again without --add")
    theirs = {"data_name": recorded.get("data"), **{key: recorded.get(key) for key in TRAINING_SETUP if key != "data_name"}}
    for run, summary in runs.items():
        difference = setup_difference(summary, theirs)
        if difference:
            key, ours, them = difference
            raise ValueError(f"--runs {run} was trained with {key} {json.dumps(ours)}, unlike the nets in {table_name} ({json.dumps(them)}); --add takes nets trained alike: probe this setup into its own --out")
    for key, ours in settings.items():
        if ours != recorded.get(key):
            raise ValueError(f"--add: {key} {json.dumps(ours)} differs from the {json.dumps(recorded.get(key))} {table_name} was probed with; valid: the same {key}")


def added(existing: pd.DataFrame, recorded: dict[str, Any], table: pd.DataFrame, runs: dict[str, dict[str, Any]], probed: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and probe.json with the new runs' rows in: a run of the same name replaced in
    place, a new one after the last net of its model (the page lists nets in table order)."""
    names = set(table["run"])
    merged = existing.reset_index(drop=True)
    for run, rows in table.groupby("run", sort=False):
        replaced = [index for index, name in enumerate(merged["run"]) if name == run]
        kin = [index for index, model in enumerate(merged["model"]) if model == rows["model"].iloc[0]]
        at = replaced[0] if replaced else (kin[-1] + 1 if kin else len(merged))
        rest = merged.drop(index=replaced).reset_index(drop=True)  # the replaced rows start at `at`
        merged = pd.concat([rest.iloc[:at], rows, rest.iloc[at:]], ignore_index=True)
    trained = [entry for entry in recorded.get("trained", []) if Path(entry["run"]).name not in names]
    trained += trained_by(runs)
    addition = {key: probed[key] for key in ("command", "started_at", "hardware", "device", "torch_version", "git_commit")} | {"runs": list(runs)}
    return merged, {**recorded, "trained": trained, "additions": [*recorded.get("additions", []), addition]}


# What a probe table's nets share: its page records one training setup (the first run's) and
# pools seeds by model, so nets trained differently go to separate tables.
TRAINING_SETUP = ("data_name", "data_seed", "splits", "budget", "recipe")


def finished_runs(runs: list[str]) -> dict[str, dict[str, Any]]:
    """Every run's summary by its folder as given, checked before any is probed: finished, with a
    validation split, and trained alike."""
    seen: dict[str, str] = {}
    for run in runs:  # a table keys its nets by folder name: a name twice would count one net twice
        name = Path(run).name
        if name in seen:
            raise ValueError(f"--runs gives {seen[name]} and {run}, two runs named {name}; a probe table keys its nets by folder name, so each may be given once")
        seen[name] = run
    summaries = [finished_run(Path(run)) for run in runs]
    for run, summary in zip(runs[1:], summaries[1:]):
        difference = setup_difference(summary, summaries[0])
        if difference:
            key, ours, theirs = difference
            raise ValueError(f"--runs {run} was trained with {key} {json.dumps(ours)}, unlike {runs[0]} ({json.dumps(theirs)}); one probe table holds nets trained alike: probe each setup into its own --out")
    return dict(zip(runs, summaries))


def setup_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """The first training-setup field where two summaries differ: (its name, ours, theirs)."""
    for key in TRAINING_SETUP:
        mine, other = ours.get(key), theirs.get(key)
        if mine == other:
            continue
        if isinstance(mine, dict) and isinstance(other, dict):  # name the field, not the whole recipe
            field = next(name for name in sorted(mine.keys() | other.keys()) if mine.get(name) != other.get(name))
            return f"{key} {field}", mine.get(field), other.get(field)
        return key, mine, other
    return None


def finished_run(run: Path) -> dict[str, Any]:
    summary = read_summary(run)
    if summary is None:
        raise ValueError(f"--runs {run} is not a finished search.train run (no summary.json)")
    if summary.get("val_source") == "none":  # probes measure on held-out images the run never chose by
        raise ValueError(f"--runs {run} kept no validation split (recipe val_size 0), and the probes measure on validation images; valid: a run trained with val_size 1 or more")
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def add_runs_option(parser: argparse.ArgumentParser) -> None:
    runs = parser.add_mutually_exclusive_group(required=True)
    runs.add_argument("--runs", type=comma_list, metavar="RUN[,RUN]", help="search.train output directories")
    # The older spelling (one directory per flag, repeated): pages' reproduce lines still use it.
    runs.add_argument("--checkpoint", action="append", dest="runs", help=argparse.SUPPRESS)
    parser.add_argument("--add", action="store_true", help="probe only these runs and add them to the table at --out (a run of the same name is replaced)")
    parser.add_argument("--plugins", type=comma_list, default=[], metavar="MODULE[,MODULE]", help="your modules that register the runs' blocks (as search.train --plugins)")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="probe", required=True)
    gradients = commands.add_parser("gradients", help="gradient norms and shattering at initialisation")
    gradients.add_argument("--models", type=comma_list, default=comma_list(DEFAULT_MODELS), metavar="MODEL[,MODEL]", help=f"default: {DEFAULT_MODELS}")
    gradients.add_argument("--data", default="cifar10")
    gradients.add_argument("--data-seed", type=int, default=0, help="the seed of the validation and test carve")
    gradients.add_argument("--batches", type=int, default=8)
    gradients.add_argument("--batch-size", type=int, default=None, help=f"default: {DEFAULT_BATCH_SIZE}, or what the validation split holds for --batches")
    gradients.add_argument("--seed", type=int, default=0)
    gradients.add_argument("--out", default="experiments/gradients")
    lesion = commands.add_parser("lesion", help="accuracy with residual branches deleted")
    add_runs_option(lesion)
    lesion.add_argument("--draws", type=int, default=5)
    lesion.add_argument("--seed", type=int, default=0)
    lesion.add_argument("--images", type=int, default=None, help="validation images each lesion is evaluated on (default: the whole split)")
    lesion.add_argument("--out", default="experiments/lesion")
    lesion.add_argument("--device", choices=DEVICES, default="auto", help="where the lesioned nets evaluate (auto: CUDA where visible)")
    responses = commands.add_parser("responses", help="std of every 3x3 layer's response (He et al. Fig. 7)")
    add_runs_option(responses)
    responses.add_argument("--images", type=int, default=1000, help="validation images (default 1000, or what the split holds)")
    responses.add_argument("--out", default="experiments/responses")
    responses.add_argument("--device", choices=DEVICES, default="auto", help="where the nets run (auto: CUDA where visible); fp32, TF32 off")
    args = parser.parse_args(argv)
    command = "python -m search.probe " + " ".join(sys.argv[1:] if argv is None else argv)
    started_at, device = now(), CPU
    try:
        check_writable_folder(args.out, "--out")
        for flag in ("seed", "data_seed"):
            if getattr(args, flag, 0) < 0:  # as search.train refuses them: one grammar for seeds
                raise ValueError(f"--{flag.replace('_', '-')} must not be negative, got {getattr(args, flag)}")
        if args.probe == "gradients":
            names = args.models
            for name in names:
                check_resnet(name)
            if args.batches < 3:
                raise ValueError(f"--batches must be at least 3 (verdicts pair batches), got {args.batches}")
            if args.batch_size is not None and args.batch_size < 2:
                raise ValueError(f"--batch-size must be at least 2, got {args.batch_size}")
            dataset = load_dataset(args.data, data_seed=args.data_seed)
            # The default fits any source: 8 batches of 64 need 512 validation images, which a
            # small set (synthetic: 400) does not hold. At least 2 images a batch: more batches
            # than the split holds are refused by gradient_probe, not measured empty.
            batch_size = args.batch_size or max(2, min(DEFAULT_BATCH_SIZE, len(dataset.val) // args.batches))
            table = gradient_probe(names, dataset, args.batches, batch_size, args.seed)
            extra = {"probe": "gradients", "data": dataset.name, "splits": dataset.sizes(), "seed": args.seed, "data_seed": args.data_seed, "batch_size": batch_size}
            recorded = {**probed_by(command, started_at, device), **extra}
        else:
            import_plugins(args.plugins)  # before the runs' nets are built: their blocks may be a user's
            for flag in ("images", "draws"):
                if (value := getattr(args, flag, None)) is not None and value < 1:
                    raise ValueError(f"--{flag} must be positive, got {value}")
            runs = finished_runs(args.runs)
            val_size = next(iter(runs.values()))["splits"]["val"]
            # How each net is measured, as probe.json records it: an addition to a table must
            # match, or numbers measured on other images or draws would be compared as if alike.
            settings = {"images": min(args.images, val_size) if args.images is not None else val_size}
            if args.probe == "lesion":
                settings |= {"seed": args.seed, "draws": args.draws}
            if args.add:
                existing, before = existing_probe(Path(args.out), args.probe)
                check_addition(Path(args.out), before, runs, settings)
            device = resolve_device(args.device)
            if args.probe == "responses":
                table = pd.concat([response_probe(Path(run), args.images, device) for run in args.runs], ignore_index=True)
            else:
                table = pd.concat([lesion_probe(Path(run), args.draws, args.seed, images=args.images, device=device) for run in args.runs], ignore_index=True)
            probed = probed_by(command, started_at, device)
            if args.add:
                table, recorded = added(existing, before, table, runs, probed)
            else:
                recorded = {**probed, **runs_provenance(args.probe, runs, table), **settings}
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write_probe(Path(args.out), table, recorded)
    print(f"wrote {path} ({len(table)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
