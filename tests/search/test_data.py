"""Data sources, carving, the decode cache, and the batched augmentation."""

from __future__ import annotations

import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from search import data
from search.augment import Normalize, random_crop_flip
from search.config import TrialConfig
from search.data import DataError, check_without_loading, data_fingerprint, load_dataset
from search.train import train
from tests.search.helpers import write_cifar10_copy, write_image_folder


def test_synthetic_is_deterministic_per_seed() -> None:
    a, b = load_dataset("synthetic", data_seed=3), load_dataset("synthetic", data_seed=3)
    c = load_dataset("synthetic", data_seed=4)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.train.images[:100], c.train.images[:100])
    assert a.test_source == "carved" and a.num_classes == 10


def test_a_path_list_holds_any_file_name_and_reads_like_the_tuple_it_replaces() -> None:
    names = ["/data/train/n01/a.JPEG", "/data/train/n01/b.JPEG", "/data/été/ü.jpg", os.fsdecode(b"/data/raw/\xff\xfe.jpg"), "/data/train/n02/c.JPEG"]
    paths = data.PathList(names)
    assert len(paths) == 5 and list(paths) == names and paths[-1] == names[-1] and paths[3] == names[3]  # a name that is not UTF-8 survives
    assert paths[1:4] == data.PathList(names[1:4]) and list(paths[::-2]) == names[::-2] and list(paths.take([4, 0, 0])) == [names[4], names[0], names[0]]
    assert pickle.loads(pickle.dumps(paths)) == paths and paths != data.PathList(names[:4]) and "b.JPEG" not in paths and names[2] in paths
    with pytest.raises(IndexError, match="path 5 of 5"):
        paths[5]
    assert len(data.PathList()) == 0 and list(data.PathList()[0:3]) == []
    split = data.FileSplit(tuple(names), torch.arange(5), 32)  # given a tuple, a split holds a PathList
    assert isinstance(split.files, data.PathList) and list(split.take(torch.tensor([2, 1])).files) == [names[2], names[1]]


def test_carved_splits_are_disjoint_and_seeded(tmp_path: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=40)
    first = load_dataset(str(tmp_path), data_seed=0)
    again = load_dataset(str(tmp_path), data_seed=0)
    other = load_dataset(str(tmp_path), data_seed=1)
    assert first.sizes() == {"train": 96, "val": 12, "test": 12}
    assert (first.val_source, first.test_source) == ("carved", "carved")
    assert torch.equal(first.test.images, again.test.images)
    assert not torch.equal(first.test.images, other.test.images)
    rows = lambda split: {bytes(image.flatten().tolist()) for image in split.images}  # noqa: E731
    assert not rows(first.train) & rows(first.val) and not rows(first.train) & rows(first.test)
    assert not rows(first.val) & rows(first.test)
    # No validation split (a fixed schedule): the same test split, and its images train instead.
    unvalidated = load_dataset(str(tmp_path), data_seed=0, val_size=0)
    assert unvalidated.sizes() == {"train": 108, "val": 0, "test": 12} and (unvalidated.val, unvalidated.val_source) == (None, "none")
    assert torch.equal(unvalidated.test.images, first.test.images) and rows(unvalidated.train) == rows(first.train) | rows(first.val)


def test_a_carve_size_asked_for_is_taken_as_asked_or_refused(tmp_path: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=40)  # 120 images: a budget's carve is a tenth, 12
    budget = load_dataset(str(tmp_path), data_seed=0, val_size=5000, test_size=5000)
    assert budget.sizes() == {"train": 96, "val": 12, "test": 12}
    asked = load_dataset(str(tmp_path), data_seed=0, val_size=30, test_size=5000, exact_sizes={"val"})
    assert asked.sizes() == {"train": 78, "val": 30, "test": 12}
    # The same order: the budget's validation images are the first of the larger carve.
    assert torch.equal(asked.test.images, budget.test.images) and torch.equal(asked.val.images[:12], budget.val.images)
    with pytest.raises(DataError, match=r"^val_size 50 leaves fewer than half of the 120 training images to train on; valid: test_size \+ val_size at most 60$"):
        load_dataset(str(tmp_path), data_seed=0, val_size=50, test_size=5000, exact_sizes={"val"})


def test_carves_and_classes_are_checked_from_file_names_as_loading_checks_them(tmp_path: Path) -> None:
    """A planned grid's carves are checked without reading an image: the same sizes pass and fail
    as when a trial loads the data."""
    write_image_folder(tmp_path, "train", per_class=40)  # 120 images
    check_without_loading(str(tmp_path), val_size=30, test_size=5000, exact_sizes={"val"})
    with pytest.raises(DataError, match=r"^val_size 50 leaves fewer than half of the 120 training images"):
        check_without_loading(str(tmp_path), val_size=50, test_size=5000, exact_sizes={"val"})
    write_image_folder(tmp_path, "test", per_class=5, seed=2)  # its own test split: only val is carved
    check_without_loading(str(tmp_path), val_size=50, test_size=5000, exact_sizes={"val"})
    assert load_dataset(str(tmp_path), data_seed=0, val_size=50, test_size=5000, exact_sizes={"val"}).sizes() == {"train": 70, "val": 50, "test": 15}
    check_without_loading("synthetic", val_size=1000, test_size=5000, exact_sizes={"val"})  # 4,000 images: 1,000 + 400
    with pytest.raises(DataError, match=r"^test_size 2500 leaves fewer than half of the 4000"):
        check_without_loading("synthetic", val_size=5000, test_size=2500, exact_sizes={"test"})
    with pytest.raises(DataError, match=r"^val_size 30000 leaves fewer than half of the 50000"):
        check_without_loading("cifar10", val_size=30000, test_size=5000, exact_sizes={"val"})  # no download: CIFAR's size is known
    write_image_folder(tmp_path, "val", per_class=5, classes=2)  # and its classes, from the folder names
    with pytest.raises(DataError, match=r"/val lacks class2: its labels would be other classes' numbers"):
        check_without_loading(str(tmp_path), val_size=5000, test_size=5000)
    check_without_loading(str(tmp_path), val_size=0, test_size=5000)  # no validation split: val/ is not read


@pytest.mark.parametrize(
    ("layout", "dropped", "message"),
    [
        ({"train": 1}, None, r"/train holds 1 class folder\(s\) \(class0\); a classifier needs at least 2, or every run scores 100%$"),
        # ImageFolder numbers each folder's classes by their sorted names: a val/ without class0
        # was once read with its class1 images labelled 0, and the run trained and ranked on it.
        ({"train": 3, "val": 3}, "val/class0", r"/val lacks class0: its labels would be other classes' numbers; valid: the same class folders as train/ \(3\)$"),
        ({"train": 2, "test": 3}, None, r"/test has class2 that train/ lacks: its labels would be other classes' numbers; valid: the same class folders as train/ \(2\)$"),
    ],
)
def test_folders_whose_classes_cannot_train_or_do_not_match_are_refused(tmp_path: Path, layout: dict[str, int], dropped: str | None, message: str) -> None:
    for split, classes in layout.items():
        write_image_folder(tmp_path, split, per_class=10, classes=classes)
    if dropped:
        shutil.rmtree(tmp_path / dropped)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path), data_seed=0)


def test_image_folder_with_val_and_test_folders(tmp_path: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=10)
    write_image_folder(tmp_path, "val", per_class=4, seed=1)
    write_image_folder(tmp_path, "test", per_class=5, seed=2)
    data = load_dataset(str(tmp_path), data_seed=0)
    assert data.sizes() == {"train": 30, "val": 12, "test": 15}
    assert (data.val_source, data.test_source) == ("folder", "folder")
    assert data.num_classes == 3
    # Class k is bright in channel k: labels match the pixels they came with.
    for images, labels in ((data.train.images, data.train.labels), (data.test.images, data.test.labels)):
        assert torch.equal(images.float().mean(dim=(2, 3)).argmax(1), labels)


def test_decoded_folder_is_cached_and_a_changed_folder_is_reread(tmp_path: Path, isolated_data_cache: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=10)
    load_dataset(str(tmp_path), data_seed=0)
    caches = sorted((isolated_data_cache / "decoded").glob("*.pt"))
    assert caches
    before = {path: path.stat().st_mtime_ns for path in caches}
    assert len(load_dataset(str(tmp_path), data_seed=0).train) == 24
    assert {path: path.stat().st_mtime_ns for path in caches} == before, "the second start must read the cache"
    assert load_dataset(str(tmp_path), data_seed=0) is load_dataset(str(tmp_path), data_seed=0), "a worker's next trial reuses what it loaded"
    write_image_folder(tmp_path, "train", per_class=11)  # one more image per class
    assert len(load_dataset(str(tmp_path), data_seed=0).train) + 6 == 33


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=3)
    bad = tmp_path / "train" / "class1" / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(str(tmp_path), data_seed=0)


def test_cifar_layout_folder(tmp_path: Path) -> None:
    write_cifar10_copy(tmp_path)
    data = load_dataset(str(tmp_path), data_seed=0)
    assert data.test_source == "folder" and len(data.test) == 30
    assert data.sizes()["train"] + data.sizes()["val"] == 200
    assert data.num_classes == 10 and data.train.images.dtype == torch.uint8


def test_bad_data_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither a data set name"):
        load_dataset(str(tmp_path / "missing"), data_seed=0)
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(str(tmp_path), data_seed=0)
    write_image_folder(tmp_path, "train", per_class=2)
    with pytest.raises(DataError) as error:  # the split folder itself: the message names its parent
        load_dataset(str(tmp_path / "train"), data_seed=0)
    assert str(error.value) == f"--data {str(tmp_path / 'train')!r} has no train/ folder and no CIFAR layout (cifar-10-batches-py/, cifar-100-python/); it is itself a split of the ImageFolder at {str(tmp_path)!r}: give that folder"


def test_named_cifar_offline_says_how_to_point_at_a_copy(isolated_data_cache: Path) -> None:
    if (isolated_data_cache / "cifar-10-batches-py").exists():
        pytest.skip("a copy is cached")
    try:
        load_dataset("cifar10", data_seed=0)
    except DataError as error:
        assert "--data path/to/folder" in str(error) and "\n" not in str(error)
    else:  # a machine with network downloaded the real data set
        assert (isolated_data_cache / "cifar-10-batches-py").is_dir()


def test_crop_flip_keeps_labels_aligned_and_shapes() -> None:
    # Image i is filled with the value i+1: after augmentation every non-padding pixel of
    # image i still reads i+1, so no image moved to another label's slot.
    values = torch.arange(1, 65, dtype=torch.uint8)
    images = values[:, None, None, None].expand(64, 3, 32, 32).clone()
    generator = torch.Generator().manual_seed(0)
    out = random_crop_flip(images, padding=4, flip=True, generator=generator)
    assert out.shape == images.shape and out.dtype == torch.uint8
    for i in range(64):
        assert set(out[i].unique().tolist()) <= {0, i + 1}
    assert (out == 0).any(), "some crops must reach into the padding"


def test_crop_offsets_and_flips_vary_per_image() -> None:
    image = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32).expand(256, 3, 32, 32).clone()
    out = random_crop_flip(image, padding=4, flip=True, generator=torch.Generator().manual_seed(1))
    distinct = {tuple(o[0, 16, 14:18].tolist()) for o in out}
    assert len(distinct) > 20


def test_flip_mirrors_about_half_the_images_and_nothing_else() -> None:
    # An image that differs from its mirror, 400 times: with flip, each output is either it or its
    # mirror, and both occur about half the time; without flip, none is mirrored.
    image = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32).expand(400, 3, 32, 32).clone()
    out = random_crop_flip(image, padding=0, flip=True, generator=torch.Generator().manual_seed(2))
    mirrored = torch.tensor([torch.equal(o, image[0].flip(2)) for o in out])
    kept = torch.tensor([torch.equal(o, image[0]) for o in out])
    assert bool((mirrored | kept).all())
    assert 150 < int(mirrored.sum()) < 250
    plain = random_crop_flip(image, padding=0, flip=False, generator=torch.Generator().manual_seed(2))
    assert torch.equal(plain, image)


def test_normalize_uses_mean_and_std() -> None:
    normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"), channels_last=True)
    x = normalize(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8))
    assert torch.allclose(x, torch.full_like(x, 2.0)) and x.is_contiguous(memory_format=torch.channels_last)


def test_an_empty_class_folder_is_refused_by_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path, "train", per_class=10)
    (tmp_path / "train" / "class9_empty").mkdir()
    with pytest.raises(DataError, match="class9_empty") as error:
        load_dataset(str(tmp_path), data_seed=0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("path", ["memory", "stream"])
def test_hidden_files_and_folders_are_not_data(tmp_path: Path, isolated_data_cache: Path, path: str) -> None:
    """Once a Jupyter .ipynb_checkpoints folder was refused as an empty class (or, holding a copy
    of an image, taken as one), macOS's ._NAME.jpg metadata failed to decode, and a .DS_Store
    written by a file browser changed the run's identity: the resume was refused."""
    root = tmp_path / ".data" / "photos"  # where the data lies may be hidden (the GPU check's .data/): only what is inside counts
    write_image_folder(root, "train", per_class=10)
    before = data_fingerprint(str(root))
    train_folder = root / "train"
    (train_folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(train_folder / "class0" / "0000.png", train_folder / ".ipynb_checkpoints" / "0000.png")
    (train_folder / "class1" / "._0000.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata, not an image")
    (train_folder / "class2" / ".thumbnails").mkdir()
    shutil.copy(train_folder / "class2" / "0000.png", train_folder / "class2" / ".thumbnails" / "0000.png")
    (train_folder / ".DS_Store").write_bytes(b"Bud1")
    loaded = load_dataset(str(root), data_seed=0, path=path, val_size=0, test_size=6)
    assert loaded.classes == ("class0", "class1", "class2") and sum(loaded.sizes().values()) == 30  # the 3 x 10 images alone
    assert data_fingerprint(str(root)) == before


def test_the_data_fingerprint_follows_the_files_not_the_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "here", "train", per_class=5)
    shutil.copytree(tmp_path / "here", tmp_path / "elsewhere" / "copy")
    assert data_fingerprint(str(tmp_path / "here")) == data_fingerprint(str(tmp_path / "elsewhere" / "copy"))
    write_image_folder(tmp_path / "other", "train", per_class=6)
    assert data_fingerprint(str(tmp_path / "here")) != data_fingerprint(str(tmp_path / "other"))
    assert data_fingerprint("synthetic") == "synthetic"


def test_a_crafted_cifar_batch_cannot_run_code(tmp_path: Path) -> None:
    import pickle

    write_cifar10_copy(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": [0]}, handle)
    with pytest.raises(DataError, match="refused posix.system|refused os.system") as error:
        load_dataset(str(tmp_path), data_seed=0)
    assert "data_batch_1" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


def test_symlink_loops_and_dangling_links_are_refused_by_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "loop", "train", per_class=5)
    (tmp_path / "loop" / "train" / "class0" / "again").symlink_to(tmp_path / "loop" / "train")
    with pytest.raises(DataError, match="symlink loop"):
        load_dataset(str(tmp_path / "loop"), data_seed=0)
    write_image_folder(tmp_path / "dangling", "train", per_class=5)
    (tmp_path / "dangling" / "train" / "class1" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match="gone.png is a link to nothing"):
        load_dataset(str(tmp_path / "dangling"), data_seed=0)


def test_a_folders_listing_keeps_os_walks_order_and_a_subfolder_read_from_its_parents_is_the_same(tmp_path: Path) -> None:
    # Folder digests (a run's identity, the decoded cache's key) hash the listing in order: a new
    # walk must list what os.walk(followlinks=True) did, in its order, or every committed
    # experiment's runs would stop resuming.
    root = tmp_path / "data"
    write_image_folder(root, "train", per_class=3)
    for extra in ("train/class0/deeper/x.png", "train/class0-b/y.png", "train/class0.c/z.png", "train/a", "val/class1/v.png", "train/.hidden/h.png", "train/class1/.DS_Store"):
        (root / extra).parent.mkdir(parents=True, exist_ok=True)
        (root / extra).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.png").write_bytes(b"x")
    (root / "train" / "linked").symlink_to(tmp_path / "elsewhere")  # through a linked folder, as ImageFolder reads
    expected = []
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        expected += [os.path.relpath(os.path.join(directory, name), root) for name in sorted(names) if not name.startswith(".")]
    assert [relative for relative, _ in data._walk_listing(root)] == expected
    with data.walking_once():
        parent = data._listing(root)
        derived = data._listing(root / "train")
        hidden = data._listing(root / "train" / ".hidden")  # not in the parent's walk: walked itself
    assert parent == data._walk_listing(root) and derived == data._walk_listing(root / "train")
    assert [relative for relative, _ in hidden] == ["h.png"]


def test_a_run_start_walks_its_data_folder_once_and_a_later_start_walks_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # On a million-file folder on network storage a walk takes minutes: the path decision, the
    # identity, the cache key and the splits share one listing per start.
    write_image_folder(tmp_path / "data", "train", per_class=12)
    walks: Counter[tuple[str, str]] = Counter()
    for name in ("_walk_listing", "_walk_image_files"):
        real = getattr(data, name)
        monkeypatch.setattr(data, name, lambda root, real=real, name=name: (walks.update([(name, Path(root).name)]), real(root))[1])
    monkeypatch.setenv("RESBENCH_IN_MEMORY_BYTES", "1")  # auto decides, and streams
    config = TrialConfig(model="resnet20", data=str(tmp_path / "data"), budget="smoke", model_overrides={"depth": 8}, recipe_overrides={"epochs": 1, "train_subset": 16, "batch_size": 8, "val_size": 4, "test_size": 4, "eval_batch_size": 4}, threads=1)
    assert train(config, tmp_path / "run", log=None)["data_path"] == "stream"
    # train/'s listing (the decoded cache's key, the loop check) is read from data/'s.
    assert walks == {("_walk_listing", "data"): 1, ("_walk_image_files", "train"): 1}
    # Outside a start nothing is kept: a file added since is seen.
    (tmp_path / "data" / "train" / "class0" / "extra.png").write_bytes((tmp_path / "data" / "train" / "class0" / "0000.png").read_bytes())
    assert len(load_dataset(str(tmp_path / "data"), data_seed=0, val_size=4, test_size=4, path="stream").train) == 36 + 1 - 3 - 3
