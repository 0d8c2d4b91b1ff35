"""Training at a folder's own resolution on both data paths: the same pixels where the paths can
agree, bounded memory when the folder is streamed, resumes from within an epoch, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from search.config import TrialConfig
from search.data import DataError, FileSplit, choose_data_path, decode_workers, load_dataset
from search.measure import tree_memory_bytes
from search.stream import DECODE_PLACES, TrainingFiles, collate, decode_at_rest, loader_workers, on_device
from search.train import main, train
from tests.search.helpers import write_photo_folder

DETERMINISTIC_COLUMNS = ["epoch", "train_loss", "train_error", "val_accuracy", "lr"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same photo-like images, 64-160 px, as PNG and as JPEG files (written once)."""
    root = tmp_path_factory.mktemp("photos")
    for suffix in (".png", ".jpg"):
        write_photo_folder(root / suffix[1:], "train", per_class=60, classes=3, suffix=suffix)
    return {"png": root / "png", "jpg": root / "jpg"}


def config(data: Path, model: str = "resnet20", threads: int = 1, **recipe: object) -> TrialConfig:
    """A small net at 64 px. One training thread on both paths: a float sum's order depends on
    how many threads split it, so only equal thread counts can give equal bits."""
    fields = {"epochs": 2, "batch_size": 32, "train_subset": 0, "val_size": 24, "test_size": 24, "image_size": 64, "eval_resize": 72, "eval_crop": 64, **recipe}
    overrides = {"depth": 8} if model == "resnet20" else {}
    return TrialConfig(model=model, data=str(data), budget="smoke", model_overrides=overrides, recipe_overrides=fields, threads=threads)


def test_both_paths_train_on_the_same_pixels_where_the_device_augments(folders: dict[str, Path], tmp_path: Path) -> None:
    # "none" and "pad_crop" crop images at rest on the device, from the run's generator, on either
    # path: the metrics are bitwise the same (PNG: lossless files; no colour jitter).
    for augment in ("pad_crop",):  # (none is the JPEG test's; its center crop is test_views')
        runs = {}
        for path in ("memory", "stream"):
            runs[path] = train(config(folders["png"], epochs=1, augment=augment, data_path=path), tmp_path / f"{augment}-{path}", log=None)
            assert runs[path]["data_path"] == path and runs[path]["image_size"] == 64
        assert runs["stream"]["loader_workers"] == 1 and runs["memory"]["loader_workers"] == 0
        metrics = [pd.read_csv(tmp_path / f"{augment}-{path}" / "metrics.csv")[DETERMINISTIC_COLUMNS] for path in ("memory", "stream")]
        pd.testing.assert_frame_equal(metrics[0], metrics[1], check_exact=True)
        assert runs["memory"]["test_accuracy"] == runs["stream"]["test_accuracy"]


def test_jpeg_folders_train_alike_on_both_paths(folders: dict[str, Path], tmp_path: Path) -> None:
    runs = [train(config(folders["jpg"], epochs=1, augment="none", data_path=path), tmp_path / path, log=None) for path in ("memory", "stream")]
    losses = [pd.read_csv(tmp_path / path / "metrics.csv")["train_loss"] for path in ("memory", "stream")]
    assert (losses[0] - losses[1]).abs().max() < 1e-3, "the same decoder on both paths: a tolerance for another's rounding"
    assert abs(runs[0]["val_accuracy"] - runs[1]["val_accuracy"]) <= 1 / 24
    # (Random-resized crops from the files train in the memory and kill tests below.)


def test_jpegs_decoded_on_the_device_get_the_workers_boxes_and_train(folders: dict[str, Path], tmp_path: Path) -> None:
    # decode "device": the workers send each JPEG's bytes and the box they drew; the training
    # process decodes the batch in one call (torchvision's decoder here, nvJPEG on CUDA: the same
    # call) and resizes each box. The boxes, flips and colours are the workers' own; a PNG in the
    # batch is cropped by its worker either way.
    jpegs = sorted(str(path) for path in (folders["jpg"] / "train").rglob("*.jpg"))[::12]
    files = (*jpegs, str(next((folders["png"] / "train").rglob("*.png"))))
    split = FileSplit(files, torch.arange(len(files)), 72)
    batches = {}
    for place in DECODE_PLACES:
        samples = TrainingFiles(split, "random_resized_crop", 48, 72, flip=True, lighting=True, seed=3, decode=place)
        collated = collate([samples[(1, index)] for index in range(len(files))])
        assert (collated.encoded_at.tolist() if collated.encoded_at is not None else []) == (list(range(len(jpegs))) if place == "device" else [])
        [batches[place]] = on_device(iter([collated]), torch.device("cpu"))
    workers, device = batches["workers"], batches["device"]
    assert device.images.shape == workers.images.shape == (len(files), 3, 48, 48) and device.images.dtype == torch.uint8
    # Stacked channels last in the workers, the layout the model trains in: not transposed again.
    assert workers.images.is_contiguous(memory_format=torch.channels_last) and device.images.is_contiguous(memory_format=torch.channels_last)
    differences = (device.images.float() - workers.images.float()).abs().mean((1, 2, 3))
    assert differences.max() < 3, "the same boxes: only the decoders' and resamplers' rounding differ"
    assert differences[-1] == 0 and torch.equal(device.flips, workers.flips) and torch.equal(device.shifts, workers.shifts)
    # A file the batched decoder cannot read is tried by Pillow, then named.
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(jpegs[0]).read_bytes()[:400])
    samples = TrainingFiles(FileSplit((jpegs[1], str(truncated)), torch.zeros(2, dtype=torch.int64), 72), "scale", 48, 72, flip=False, lighting=False, seed=0, decode="device")
    with pytest.raises(DataError, match=f"cannot decode image {truncated}"):
        list(on_device(iter([collate([samples[(1, 0)], samples[(1, 1)]])]), torch.device("cpu")))
    run = train(dataclasses.replace(config(folders["jpg"], epochs=1, data_path="stream", augment="random_resized_crop"), decode="device"), tmp_path / "run", log=None)
    assert run["decode"] == "device" and run["status"] == "completed" and 0 < run["train_loss"] < 5


def test_a_folders_first_decode_in_loader_workers_gives_the_same_tensor_and_names_a_bad_file(folders: dict[str, Path], tmp_path: Path) -> None:
    files = sorted(str(path) for path in (folders["jpg"] / "train").rglob("*.jpg"))
    in_process = decode_at_rest(files, 48, workers=0)
    assert in_process.shape == (len(files), 3, 48, 48) and torch.equal(decode_at_rest(files, 48, workers=2), in_process)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"^cannot decode image .*broken\.jpg: ") as raised:
        decode_at_rest([*files[:300], str(broken)], 48, workers=2)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
    # A folder's first decode takes the process's threads, one worker per 1,000 files at most;
    # a small one decodes in the process (starting workers costs more).
    assert (decode_workers(1999), decode_workers(2000), decode_workers(50_000)) == (0, min(2, torch.get_num_threads()), torch.get_num_threads())


WORKER_PARENTS = """
import multiprocessing, os, torch
from search.stream import loader
from tests.search.helpers import ParentOfWorker
multiprocessing.set_start_method("forkserver")  # Python 3.14's default on Linux
batches = loader(ParentOfWorker(4), [[0, 1], [2, 3]], 2, torch.device("cpu"))
print(os.getpid(), sorted({pid for batch in batches for pid in batch.labels.tolist()}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="workers start by fork on Linux; elsewhere by the platform's own method")
def test_loader_workers_are_forked_from_the_trial_where_python_would_start_a_fork_server() -> None:
    """Forked workers start at once with the dataset they were forked with; a fork server's import
    torch again and are sent the dataset pickled, every time a loader starts (search.stream.WORKER_START)."""
    result = subprocess.run([sys.executable, "-c", WORKER_PARENTS], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    trial, parents = result.stdout.split(maxsplit=1)
    assert parents.strip() == f"[{trial}]", "both workers' parent is the process that trains"


def test_auto_streams_a_folder_whose_decoded_size_passes_the_bound(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = 180 * 3 * 72 * 72
    monkeypatch.setenv("RESBENCH_IN_MEMORY_BYTES", str(decoded // 4))
    assert choose_data_path("auto", str(folders["png"]), 72) == "stream"
    monkeypatch.setenv("RESBENCH_IN_MEMORY_BYTES", str(decoded * 2))
    assert choose_data_path("auto", str(folders["png"]), 72) == "memory"
    assert choose_data_path("auto", "synthetic", 72) == "memory" and choose_data_path("stream", str(folders["png"]), 72) == "stream"
    streamed, held = (load_dataset(str(folders["png"]), data_seed=0, val_size=24, test_size=24, rest_size=72, path=path) for path in ("stream", "memory"))
    assert isinstance(streamed.train, FileSplit) and len(streamed.train) == len(held.train) == 180 - 2 * 18  # a tenth each for val and test
    assert streamed.mean == held.mean and streamed.std == held.std, "the same statistics, to the last bit, from files or tensors"
    assert loader_workers(16, torch.device("cuda")) == (15, 1) and loader_workers(2, torch.device("cpu")) == (1, 1)


def peak_tree_memories(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, tuple[int, subprocess.CompletedProcess[str]]]:
    """Run ``search.train`` commands side by side; each one's peak process-tree memory."""
    processes = {name: subprocess.Popen([sys.executable, "-m", "search.train", *args], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, args in commands.items()}
    peaks = dict.fromkeys(commands, 0)
    while any(process.poll() is None for process in processes.values()):
        for name, process in processes.items():
            if process.poll() is None:
                # Written pages only: a library page both runs read is private to whichever
                # touched it first, which moved the sums of the same command by ~100 MB.
                peaks[name] = max(peaks[name], tree_memory_bytes(process.pid, ("Private_Dirty",)))
        time.sleep(0.05)
    return {name: (peaks[name], subprocess.CompletedProcess(process.args, process.returncode, *process.communicate())) for name, process in processes.items()}


def test_a_streamed_folder_trains_in_memory_that_does_not_grow_with_it(tmp_path: Path) -> None:
    # Two folders, one four times the other; at rest (512 px, the evaluation's resize) the big
    # one decodes to ~500 MB, 375 MB more than the small one, over the 20 MB this test allows in
    # memory. Streamed side by side, the whole process tree (the trainer and its loader workers)
    # of each peaks at the same written memory, within 150 MB: sampled peaks of the same command
    # differ by up to ~70 MB between runs, and a path that held the decoded folder would differ by 375.
    write_photo_folder(tmp_path / "small", "train", per_class=40, classes=3, seed=1)
    write_photo_folder(tmp_path / "big", "train", per_class=160, classes=3, seed=1)
    commands = {
        name: ["--model", "resnet20", "--depth", "8", "--data", str(tmp_path / name), "--budget", "smoke", "--epochs", "1", "--train-subset", "64", "--batch-size", "32",
               "--val-size", "12", "--test-size", "12", "--image-size", "64", "--eval-resize", "512", "--eval-crop", "64", "--eval-batch-size", "12",
               "--augment", "random_resized_crop", "--threads", "1", "--out", str(tmp_path / f"run-{name}")]
        for name in ("small", "big")
    }
    measured = peak_tree_memories(commands, {"RESBENCH_IN_MEMORY_BYTES": str(20 * 2**20)})
    for name, (_, finished) in measured.items():
        assert finished.returncode == 0, finished.stderr
        assert json.loads((tmp_path / f"run-{name}" / "summary.json").read_text())["data_path"] == "stream"
    peaks = {name: peak for name, (peak, _) in measured.items()}
    assert peaks["big"] - peaks["small"] < 150 * 2**20, f"{peaks} (decoded, the big folder is {480 * 3 * 512 * 683 / 2**20:.0f} MB)"


def test_a_run_killed_within_an_epoch_resumes_from_its_last_checkpoint_there(folders: dict[str, Path], tmp_path: Path) -> None:
    # The paper's ImageNet view: scale augmentation with colour from the files, 10-crop evaluation.
    whole = train(config(folders["jpg"], epochs=1, data_path="stream", augment="scale", lighting=True, eval_crops=10), tmp_path / "whole", log=None)
    assert whole["eval_size"] == {"resize": 72, "crop": 64, "crops": 10}
    args = ["--model", "resnet20", "--depth", "8", "--data", str(folders["jpg"]), "--budget", "smoke", "--epochs", "1", "--batch-size", "32", "--train-subset", "0",
            "--val-size", "24", "--test-size", "24", "--image-size", "64", "--eval-resize", "72", "--eval-crop", "64", "--data-path", "stream",
            "--augment", "scale", "--lighting", "true", "--eval-crops", "10", "--threads", "1", "--checkpoint-minutes", "0.00001", "--out", str(tmp_path / "killed")]
    # Held before its fourth step after checkpoints within the epoch (before steps 2 and 3),
    # then killed outright (no SIGTERM checkpoint): the resume starts from the last, at step 2.
    process = subprocess.Popen([sys.executable, "-m", "search.train", *args], env={**os.environ, "RESBENCH_FAULT": "stall_at_step:4"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # killed, never read
    checkpoint = tmp_path / "killed" / "checkpoint" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if checkpoint.exists():
            try:
                state = torch.load(checkpoint, weights_only=True)
            except Exception:  # being replaced at this moment
                continue
            if state["in_epoch"] and state["in_epoch"]["step"] == 2:
                break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run([sys.executable, "-m", "search.train", *args], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "step 2 of epoch 1" in resumed.stdout
    expected = pd.read_csv(tmp_path / "whole" / "metrics.csv")[DETERMINISTIC_COLUMNS]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "metrics.csv")[DETERMINISTIC_COLUMNS], expected, check_exact=True)
    assert json.loads((tmp_path / "killed" / "summary.json").read_text())["test_accuracy"] == whole["test_accuracy"]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--model", "vgg16", "--data", "synthetic", "--image-size", "16", "--eval-resize", "16", "--eval-crop", "16"], "recipe field image_size 16: vgg16 cannot take 16x16 images"),
        (["--model", "resnet20", "--data", "synthetic", "--data-path", "stream"], "data_path stream reads image files"),
        (["--model", "resnet20", "--data", "synthetic", "--eval-crop", "40"], "eval_crop 40 is larger than eval_resize 32"),
        (["--model", "resnet20", "--data", "synthetic", "--eval-crops", "5"], "eval_crops must be 1 or 10"),
        (["--model", "resnet20", "--data", "synthetic", "--augment", "mixup"], "unknown augment 'mixup'; valid: pad_crop, random_resized_crop, scale, none"),
        (["--model", "resnet20", "--data", "synthetic", "--checkpoint-minutes", "0"], "--checkpoint-minutes must be positive"),
        (["--model", "resnet20", "--data", "synthetic", "--decode", "gpu"], "unknown --decode 'gpu'; valid: workers, device"),
    ],
)
def test_bad_sizes_and_paths_are_one_line_and_write_nothing(words: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*words, "--budget", "smoke", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "run").exists()


def test_a_corrupt_file_in_a_streamed_folder_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_photo_folder(tmp_path / "photos", "train", per_class=12, classes=2)
    broken = tmp_path / "photos" / "train" / "class1" / "0003.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")  # decoded by a loader worker, reported by the trainer
    words = ["--model", "resnet20", "--depth", "8", "--data", str(tmp_path / "photos"), "--budget", "smoke", "--data-path", "stream", "--batch-size", "8", "--out", str(tmp_path / "run")]
    assert main(words) == 2
    error = capsys.readouterr().err
    assert f"cannot decode image {broken}" in error and len(error.strip().splitlines()) == 1, error
