"""Data for trials: split by a seeded carve, then held in memory or streamed from the files.

Two paths (``Recipe.data_path``): **memory** decodes every image once into uint8 tensors at its
rest size (``search.views.at_rest``: the shorter side resized to ``eval_resize``, the central
square), cached on disk, and augments whole batches on the device; **stream** keeps the file
names and decodes each batch in loader workers (``search.stream``), for folders whose decoded size
would not fit comfortably in memory (``choose_data_path``). CIFAR sources are always in memory.

Sources (``--data``): ``cifar10`` / ``cifar100`` (torchvision, downloaded on first use into the
cache directory), ``synthetic`` (generated, deterministic per seed), or a folder holding
torchvision's CIFAR layout (``cifar-10-batches-py/``, ``cifar-100-python/``) or an ImageFolder
root with ``train/`` and optional ``val/`` and ``test/`` (class = subfolder).

Validation is carved from train unless ``val/`` exists; a held-out test split is carved too when
there is no test set, so every run reports a number that no selection ever saw.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import operator
import os
import pickle
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch

import zoo
from zoo.size import available_memory_bytes

CIFAR_SOURCES = {"cifar10": ("CIFAR10", "cifar-10-batches-py"), "cifar100": ("CIFAR100", "cifar-100-python")}
SOURCES = ("cifar10", "cifar100", "synthetic", "a folder path")


class DataError(ValueError):
    """Bad or unreadable data; the message is one line that says what to do."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, (N, 3, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


class PathList(Sequence[str]):
    """File paths held in two arrays, their bytes end to end and where each one starts, rather than
    as a tuple of str. Loader workers are forked from the trainer and share its memory until they
    write to it, and reading a Python object writes its reference count: over shuffled epochs
    every worker came to hold a private copy of a tuple of paths (ImageNet's 1.28M: ~150 MB a
    worker; benchmarks/path_list_memory.py). Arrays are read without a write."""

    __slots__ = ("_bytes", "_starts")

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._join([os.fsencode(path) for path in paths])  # fsencode: any name the file system holds

    def _join(self, encoded: list[bytes]) -> None:
        self._starts = np.cumsum([0, *map(len, encoded)], dtype=np.int64)
        self._bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    @classmethod
    def of(cls, paths: Iterable[str]) -> PathList:
        return paths if isinstance(paths, PathList) else cls(paths)

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> PathList: ...
    def __getitem__(self, index: int | slice) -> str | PathList:
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        position = operator.index(index)
        if not -len(self) <= position < len(self):
            raise IndexError(f"path {index} of {len(self)}")
        position %= len(self)
        return os.fsdecode(self._bytes[self._starts[position] : self._starts[position + 1]].tobytes())

    def take(self, positions: Iterable[int]) -> PathList:
        """The paths at ``positions`` (each in 0..len-1), in that order: a carve's split."""
        blob, starts = self._bytes.tobytes(), self._starts.tolist()  # plain bytes and ints slice fastest
        taken = PathList.__new__(PathList)
        taken._join([blob[starts[position] : starts[position + 1]] for position in positions])
        return taken

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathList) and np.array_equal(self._starts, other._starts) and np.array_equal(self._bytes, other._bytes)

    def __repr__(self) -> str:
        return f"PathList({len(self)} paths)"


@dataclass(frozen=True)
class FileSplit:
    """A split read from its files while it trains (the streaming path)."""

    files: PathList  # given as any sequence of paths
    labels: torch.Tensor  # int64, (N,)
    rest_size: int  # the side its images are put at rest at (search.views.at_rest)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", PathList.of(self.files))

    def __len__(self) -> int:
        return int(self.labels.numel())

    def take(self, index: torch.Tensor) -> FileSplit:
        return FileSplit(self.files.take(index.tolist()), self.labels[index], self.rest_size)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split | FileSplit
    val: Split | FileSplit | None  # None: the recipe keeps no validation split (val_size 0)
    test: Split | FileSplit | None
    num_classes: int
    mean: tuple[float, float, float]  # per channel, of the training split, in [0, 1]
    std: tuple[float, float, float]
    val_source: str  # "folder", "carved" or "none"
    test_source: str | None  # "folder", "carved" or None
    classes: tuple[str, ...] = ()  # the class names, in label order
    path: str = "memory"  # "memory" (Split) or "stream" (FileSplit)
    rest_size: int = 32  # every image's side at rest: what evaluation crops from

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val else 0, "test": len(self.test) if self.test else 0}


def cache_root() -> Path:
    """``$RESBENCH_DATA``, else the user cache directory."""
    if os.environ.get("RESBENCH_DATA"):
        return Path(os.environ["RESBENCH_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resbench"


def cifar_layout(folder: Path) -> str | None:
    """The CIFAR set a folder holds in torchvision's layout (cifar-10-batches-py/, ...), if any."""
    return next((name for name, (_, layout) in CIFAR_SOURCES.items() if (folder / layout).is_dir()), None)


def describe_source(spec: str) -> str:
    """Validate ``--data`` without loading anything (bad input fails before any output exists)."""
    if spec in CIFAR_SOURCES or spec == "synthetic":
        return spec
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise DataError(f"--data {spec!r} is neither a data set name ({', '.join(SOURCES[:3])}) nor an existing folder")
    if cifar_layout(path):
        return str(path.resolve())
    if not (path / "train").is_dir():
        # The commonest slip: the split folder itself (.../train), whose class folders hold images.
        split = path.name in ("train", "val", "test") and (path.parent / "train").is_dir()
        hint = f"; it is itself a split of the ImageFolder at {str(path.parent)!r}: give that folder" if split else ""
        raise DataError(f"--data {spec!r} has no train/ folder and no CIFAR layout (cifar-10-batches-py/, cifar-100-python/){hint}")
    return str(path.resolve())


# ---------------------------------------------------------------------------------------------
# Sources


SYNTHETIC_IMAGES = 4000
CIFAR_TRAIN_IMAGES = 50_000  # CIFAR-10 and CIFAR-100 alike


def synthetic(seed: int, size: int = SYNTHETIC_IMAGES, num_classes: int = 10, image_size: int = 32) -> tuple[Split, list[str]]:
    """Images whose label is their content: each class is a random low-frequency colour pattern,
    shown at a random offset, brightness and noise, so a network has something real to learn."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator)
    prototypes = torch.nn.functional.interpolate(coarse, size=image_size * 2, mode="bilinear", align_corners=False)
    labels = torch.randint(0, num_classes, (size,), generator=generator)
    offsets = torch.randint(0, image_size, (size, 2), generator=generator)
    rows = offsets[:, 0, None] + torch.arange(image_size)
    cols = offsets[:, 1, None] + torch.arange(image_size)
    images = prototypes[labels[:, None, None, None], torch.arange(3)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    brightness = 0.7 + 0.6 * torch.rand(size, 1, 1, 1, generator=generator)
    noise = 0.08 * torch.randn(images.shape, generator=generator)
    images = ((images * brightness + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return Split(images, labels), [f"class{i}" for i in range(num_classes)]


CIFAR_FILES = {
    "cifar10": (["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"], ["test_batch"], "batches.meta", b"labels", b"label_names"),
    "cifar100": (["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}


# What a CIFAR batch holds: dicts, lists, strings, bytes, numbers and numpy arrays. Unpickling an
# array calls exactly these (numpy 1 names its core numpy.core, numpy 2 numpy._core); any other
# global in a file is refused, so a crafted batch cannot run code.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


class CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in CIFAR_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}: a CIFAR batch holds only arrays, lists, strings and numbers")


def _read_cifar_folder(name: str, folder: Path) -> tuple[Split, Split, list[str]]:
    """Read the pickled CIFAR batches (the format torchvision downloads) into uint8 tensors.

    Read here rather than through torchvision's dataset classes, which verify md5 sums and so
    refuse a re-packed or test-made copy of the same format; ``CifarUnpickler`` admits only what the
    format holds, so nothing in a file can run.
    """
    train_files, test_files, meta_file, label_key, names_key = CIFAR_FILES[name]

    def unpickle(filename: str) -> dict[bytes, Any]:
        path = folder / filename
        try:
            with open(path, "rb") as handle:
                return CifarUnpickler(handle, encoding="bytes").load()
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise DataError(f"cannot read CIFAR file {path}: {str(error).splitlines()[0][:200]}") from None

    def read(filenames: list[str]) -> Split:
        batches = [unpickle(f) for f in filenames]
        images = torch.cat([torch.as_tensor(b[b"data"], dtype=torch.uint8).reshape(-1, 3, 32, 32) for b in batches])
        labels = torch.cat([torch.as_tensor(b[label_key], dtype=torch.int64) for b in batches])
        return Split(images, labels)

    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in unpickle(meta_file)[names_key]]
    return read(train_files), read(test_files), classes


def _download_cifar(name: str, root: Path) -> Path:
    """torchvision's verified download into ``root`` (a no-op when a good copy is there)."""
    import torchvision  # deferred: only the named CIFAR sources need it

    class_name, folder = CIFAR_SOURCES[name]
    try:
        getattr(torchvision.datasets, class_name)(str(root), train=True, download=True)
    except Exception as error:  # offline: URLError, or RuntimeError on a partial copy
        raise DataError(
            f"cannot download {name} into {root} ({type(error).__name__}); without network, put a copy of "
            f"{folder}/ there, set RESBENCH_DATA to a folder holding it, or pass --data path/to/folder "
            f"(CIFAR layout or ImageFolder with train/)"
        ) from None
    return root / folder


# A start (search.train's, a search driver's) asks for a folder's listing several times: the data
# path's decision, the run's identity, the decoded cache's key, each split's files. On a
# million-file folder on network storage a walk takes minutes, so within ``walking_once()`` each
# folder is walked once. Outside it every call walks again: a process that lives on (a Ray
# worker, a notebook) sees a folder that changed between runs.
_WALKS: contextvars.ContextVar[dict[tuple[str, str], Any] | None] = contextvars.ContextVar("walks", default=None)


@contextlib.contextmanager
def walking_once() -> Iterator[None]:
    """Each folder walked at most once inside this block (an enclosing block's walks are kept)."""
    if _WALKS.get() is not None:
        yield
        return
    token = _WALKS.set({})
    try:
        yield
    finally:
        _WALKS.reset(token)


def forget_walks() -> None:
    """Drop the walks kept so far (a million files' listing is hundreds of MB): once the data is loaded."""
    walks = _WALKS.get()
    if walks is not None:
        walks.clear()


def _walked_once(kind: str, root: Path, walk: Callable[[], Any]) -> Any:
    walks = _WALKS.get()
    if walks is None:
        return walk()
    key = (kind, os.path.realpath(root))
    if key not in walks:
        walks[key] = walk()
    return walks[key]


def _image_files(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes and (file, class index) pairs, found by torchvision's own ImageFolder rules: an
    empty class folder is refused (it would silently count as a class), naming the folder."""
    return _walked_once("image files", root, lambda: _walk_image_files(root))


def is_hidden(name: str) -> bool:
    """A file or folder that is not data, whatever its extension: .ipynb_checkpoints, .DS_Store,
    .git, and macOS's ._NAME.jpg companions (metadata, not images). ImageFolder itself would take
    a hidden folder as a class and a ._NAME.jpg as an image."""
    return name.startswith(".")


def _walk_image_files(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset

    _listing(root)  # loops and dangling links, refused before make_dataset walks them
    layout = f"(ImageFolder layout: {root}/CLASS/IMAGE, every class folder with images)"
    try:
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not is_hidden(entry.name))
    except FileNotFoundError:
        raise DataError(f"{root}: no such folder {layout}") from None
    if not classes:
        raise DataError(f"{root}: no class folder in it {layout}")

    inside = len(str(root))  # where the path below root starts: root itself may lie under a hidden folder

    def is_image(path: str) -> bool:  # per file (a million on ImageNet), so is_hidden as a string test: no part below root starting with "."
        return has_file_allowed_extension(path, IMG_EXTENSIONS) and f"{os.sep}." not in path[inside:]

    try:  # ImageFolder's own walk and numbering (classes by sorted name), hidden entries left out
        files = make_dataset(str(root), {name: index for index, name in enumerate(classes)}, is_valid_file=is_image)
    except FileNotFoundError as error:
        raise DataError(f"{root}: {str(error).splitlines()[0]} {layout}") from None
    return classes, files


def decode_workers(files: int) -> int:
    """Loader workers for a folder's first decode: the process's CPUs (its torch threads: a trial's
    share under a launcher), one per 1,000 files at most, none for a small folder (starting them
    costs more than they save). CIFAR-10's 50k JPEGs take about 9.5 s in one process on a
    2-core Xeon, 7.4 s in its 2 workers (benchmarks/first_decode.py): a GPU machine's first start, in a
    lease of minutes, is what this is for."""
    return min(torch.get_num_threads(), files // 1000) if files >= 2000 else 0


def _decode_folder(root: Path, rest_size: int, workers: int | None = None) -> tuple[Split, list[str]]:
    """Decode every image once, at rest (this runs only when the cache misses), in loader
    workers (``decode_workers`` unless given)."""
    from search.stream import decode_at_rest  # the loader machinery (search.stream imports this module)

    classes, files = _image_files(root)
    paths = [file for file, _ in files]
    images = decode_at_rest(paths, rest_size, decode_workers(len(paths)) if workers is None else workers)
    return Split(images, torch.tensor([label for _, label in files], dtype=torch.int64)), classes


def _list_folder(root: Path, rest_size: int) -> tuple[FileSplit, list[str]]:
    classes, files = _image_files(root)
    return FileSplit(PathList(file for file, _ in files), torch.tensor([label for _, label in files], dtype=torch.int64), rest_size), classes


def _listing(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every file under ``root`` (through linked folders, as ImageFolder reads them): its path
    relative to ``root`` and its stat, in a fixed order. A link that loops or leads nowhere is
    refused by name. Within ``walking_once()``, a folder whose parent was walked (a run's
    ``train/`` after the run's identity listed the data folder) is read from the parent's listing."""
    walks = _WALKS.get() or {}  # outside walking_once() nothing is kept
    for ancestor in Path(os.path.abspath(root)).parents if walks else ():
        kept = walks.get(("listing", os.path.realpath(ancestor)))
        below = Path(os.path.relpath(root, ancestor)) if kept is not None else None
        if below is not None and not any(map(is_hidden, below.parts)):  # a hidden folder is not in the parent's walk
            # A subtree's files are a contiguous run of the parent's walk, in the same order.
            prefix = f"{below}{os.sep}"
            return _walked_once("listing", root, lambda: [(relative[len(prefix):], stat) for relative, stat in kept if relative.startswith(prefix)])
    return _walked_once("listing", root, lambda: _walk_listing(root))


def _walk_listing(root: Path) -> list[tuple[str, os.stat_result]]:
    # os.walk's order (a folder's files sorted, then its sorted subfolders, each in turn), with
    # paths made relative as they are built: os.path.relpath on each of a million files took longer
    # than the walk itself.
    files: list[tuple[str, os.stat_result]] = []
    visited: set[str] = set()
    pending = [(str(root), "")]  # (folder, its path relative to root, ending in a separator)
    while pending:
        directory, relative = pending.pop()
        real = os.path.realpath(directory)
        if real in visited:
            raise DataError(f"{directory} links back to {real}: a symlink loop in the data folder")
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # a folder that cannot be listed holds nothing, as os.walk and ImageFolder see it
        visited.add(real)
        subdirectories: list[str] = []
        names: list[str] = []
        # Hidden entries are not data: a .DS_Store written by a file browser changes neither the
        # decoded cache's key nor a run's identity (and folders without any keep their digests).
        for entry in entries:
            if not is_hidden(entry.name):
                (subdirectories if _is_folder(entry) else names).append(entry.name)
        subdirectories.sort()
        for name in sorted(names):
            path = os.path.join(directory, name)
            try:
                files.append((relative + name, os.stat(path)))
            except FileNotFoundError:
                raise DataError(f"{path} is a link to nothing (dangling symlink in the data folder)") from None
        pending += [(os.path.join(directory, name), f"{relative}{name}{os.sep}") for name in reversed(subdirectories)]
    return files


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # through a link, as os.walk(followlinks=True) goes
    except OSError:
        return False


def _folder_fingerprint(root: Path, rest_size: int) -> str:
    """The decoded cache's key: changes when any file under ``root`` is added, removed, resized
    or touched (and with the way images are put at rest: ``at-rest`` is its version)."""
    digest = hashlib.sha256(f"{root.resolve()}|at-rest|{rest_size}".encode())
    for relative, stat in _listing(root):
        digest.update(f"{relative}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def data_fingerprint(spec: str) -> str:
    """What a run's identity holds for its data: a named source's name, or a digest of a folder's
    file names and sizes, which is the same wherever the same files are copied."""
    source = describe_source(spec)
    if source in CIFAR_SOURCES or source == "synthetic":
        return source
    digest = hashlib.sha256()
    for relative, stat in _listing(Path(source)):
        digest.update(f"{relative}|{stat.st_size}\n".encode())
    return f"folder:{digest.hexdigest()[:16]}"


def load_folder_cached(root: Path, rest_size: int) -> tuple[Split, list[str]]:
    """Decode an ImageFolder split once; later starts read the uint8 tensor back in about a second."""
    cache = cache_root() / "decoded" / f"{root.parent.name}-{root.name}-{_folder_fingerprint(root, rest_size)}.pt"
    if cache.exists():
        stored = torch.load(cache, weights_only=True)
        return Split(stored["images"], stored["labels"]), list(stored["classes"])
    split, classes = _decode_folder(root, rest_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    stored = {"images": split.images, "labels": split.labels, "classes": classes}
    zoo.write_atomically(cache, lambda temporary: torch.save(stored, temporary))  # concurrent trials never read half a cache
    return split, classes


# ---------------------------------------------------------------------------------------------
# Splits


def carve_sizes(requested: dict[str, int], available: int, exact: Collection[str] = ()) -> dict[str, int]:
    """How many of the ``available`` training images each carved split ("test", "val") takes.

    A budget's size (5k on CIFAR) is at most a tenth of a small set (synthetic's 4,000 images
    give 400), at least 1. A size someone asked for (``exact``: --val-size 10000, a trained run's
    recorded split) is taken as asked, or refused when the carves would leave less than half the
    set to train on: shrinking it would quietly give the run another validation set than asked."""
    sizes = {split: size if split in exact else max(1, min(size, available // 10)) for split, size in requested.items()}
    asked = sorted(split for split in sizes if split in exact)
    if asked and sum(sizes.values()) > available // 2:
        named = " and ".join(f"{split}_size {sizes[split]}" for split in asked)
        total = " + ".join(f"{split}_size" for split in sorted(sizes))
        raise DataError(f"{named} leave{'s' if len(asked) == 1 else ''} fewer than half of the {available} training images to train on; valid: {total} at most {available // 2}")
    return sizes


def channel_stats(chunks: Iterable[torch.Tensor]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std in [0, 1] of uint8 (N, 3, H, W) chunks. The sums are integers, so
    the result is exact and the same however the images are chunked (both data paths agree)."""
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    count = 0
    for chunk in chunks:
        for part in chunk.split(1024):
            total += part.sum(dim=(0, 2, 3), dtype=torch.int64)
            squares += (part.to(torch.int32) ** 2).sum(dim=(0, 2, 3), dtype=torch.int64)
            count += part.shape[0] * part.shape[2] * part.shape[3]
    mean = total.to(torch.float64) / (255 * count)
    std = (squares.to(torch.float64) / (255 * 255 * count) - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]


# A folder's channel statistics come from at most this many training images (at rest): enough for
# three numbers, and an ImageNet-sized folder is not decoded whole to normalise it.
STATS_IMAGES = 10_000
# The streaming path is taken when the decoded splits would need more than this share of the
# memory available to a trial (RESBENCH_IN_MEMORY_BYTES sets the bound in bytes instead).
IN_MEMORY_SHARE = 0.25
IN_MEMORY_VARIABLE = "RESBENCH_IN_MEMORY_BYTES"


def in_memory_limit_bytes(memory_share: float = 1.0) -> int:
    if os.environ.get(IN_MEMORY_VARIABLE):
        return int(os.environ[IN_MEMORY_VARIABLE])
    return int(available_memory_bytes() * IN_MEMORY_SHARE * memory_share)


def choose_data_path(requested: str, spec: str, rest_size: int, memory_share: float = 1.0) -> str:
    """``memory`` or ``stream`` for ``requested`` (auto, memory or stream): auto streams a folder
    whose decoded images (3 x rest_size^2 bytes each) would pass ``in_memory_limit_bytes``."""
    source = describe_source(spec)
    path = Path(source)
    is_image_folder = path.is_dir() and not cifar_layout(path)
    if not is_image_folder:
        if requested == "stream":
            raise DataError(f"data_path stream reads image files, and --data {spec} is not an ImageFolder (train/CLASS/IMAGE); valid for it: auto, memory")
        return "memory"
    if requested != "auto":
        return requested
    files = sum(1 for split in ("train", "val", "test") if (path / split).is_dir() for _ in _image_files(path / split)[1])
    return "memory" if files * 3 * rest_size * rest_size <= in_memory_limit_bytes(memory_share) else "stream"


# The last data set loaded in this process. A Ray worker runs trial after trial on the same data
# (actors are reused), and reading, splitting and measuring it again costs each trial seconds
# (CIFAR's channel statistics alone are a second on one core). Splits are never written to.
_LAST_LOADED: dict[tuple[object, ...], Dataset] = {}


def check_class_folders(root: Path, classes: list[str], held_out: Mapping[str, list[str]]) -> None:
    """An ImageFolder's train/ classes, and those of its val/ and test/ (``held_out``), which must
    be the same: ImageFolder numbers classes by their sorted folder names, folder by folder, so
    other class folders would label a split's images with other classes' numbers."""
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} holds {len(classes)} class folder(s) ({', '.join(classes)}); a classifier needs at least 2, or every run scores 100%")
    for split, split_classes in held_out.items():
        if split_classes != classes:
            missing, extra = sorted(set(classes) - set(split_classes)), sorted(set(split_classes) - set(classes))
            differences = ([f"lacks {', '.join(missing[:5])}"] if missing else []) + ([f"has {', '.join(extra[:5])} that train/ lacks"] if extra else [])
            raise DataError(f"{root / split} {'; '.join(differences)}: its labels would be other classes' numbers; valid: the same class folders as train/ ({len(classes)})")


def requested_carves(val_size: int, test_size: int, *, own_val: bool, own_test: bool) -> dict[str, int]:
    """The splits carved from the training images: those the source has no folder (or file) of."""
    requested = {} if own_test else {"test": test_size}
    if not own_val and val_size:
        requested["val"] = val_size
    return requested


def check_without_loading(spec: str, *, val_size: int, test_size: int, exact_sizes: Collection[str] = ()) -> None:
    """``load_dataset``'s checks of a source (its carves, a folder's classes) from file names and
    counts alone, no image read: a planned grid whose every trial would be refused is refused
    when it is planned."""
    source = describe_source(spec)
    if source == "synthetic":
        available, own_val, own_test = SYNTHETIC_IMAGES, False, False
    elif source in CIFAR_SOURCES or cifar_layout(Path(source)):
        available, own_val, own_test = CIFAR_TRAIN_IMAGES, False, True
    else:
        root = Path(source)
        classes, files = _image_files(root / "train")
        own_val, own_test = (root / "val").is_dir(), (root / "test").is_dir()
        held_out = {split: _image_files(root / split)[0] for split, own in (("val", own_val and val_size), ("test", own_test)) if own}
        check_class_folders(root, classes, held_out)
        available = len(files)
    carve_sizes(requested_carves(val_size, test_size, own_val=own_val, own_test=own_test), available, exact_sizes)


def asked_carves(recipe_overrides: Mapping[str, Any]) -> set[str]:
    """The carves whose sizes a command or a search's --recipe set (``carve_sizes``' ``exact``)."""
    return {split for split in ("val", "test") if f"{split}_size" in recipe_overrides}


def load_dataset(spec: str, *, data_seed: int, val_size: int = 5000, test_size: int = 5000, exact_sizes: Collection[str] = (), rest_size: int = 32, path: str = "memory", workers: int = 1) -> Dataset:
    """Load ``spec`` and split it; the same ``data_seed`` always gives the same splits, on either
    ``path`` (``memory`` or ``stream``, see ``choose_data_path``). ``exact_sizes`` names the carves
    ("val", "test") whose sizes were asked for rather than taken from a budget (``carve_sizes``).
    ``rest_size`` is the side every image is held at (``eval_resize``); ``workers`` decode a
    streamed folder's statistics sample."""
    source = describe_source(spec)
    # A folder's files (names, sizes, times) are in the key: a folder that changed is read again.
    files = None if source in CIFAR_SOURCES or source == "synthetic" else _folder_fingerprint(Path(source), rest_size)
    key = (source, files, data_seed, val_size, test_size, frozenset(exact_sizes), rest_size, path)
    if key not in _LAST_LOADED:
        dataset = _load_dataset(source, data_seed=data_seed, val_size=val_size, test_size=test_size, exact_sizes=exact_sizes, rest_size=rest_size, path=path, workers=workers)
        _LAST_LOADED.clear()  # one at a time: a CIFAR training split is 150 MB
        _LAST_LOADED[key] = dataset
    return _LAST_LOADED[key]


def _load_dataset(source: str, *, data_seed: int, val_size: int, test_size: int, exact_sizes: Collection[str], rest_size: int, path: str, workers: int) -> Dataset:
    val: Split | FileSplit | None = None
    test: Split | FileSplit | None = None
    train: Split | FileSplit
    is_folder = False
    if source == "synthetic":
        train, classes = synthetic(seed=data_seed, image_size=rest_size)
        name = "synthetic"
    elif source in CIFAR_SOURCES:
        folder = cache_root() / CIFAR_SOURCES[source][1]
        if not folder.is_dir():
            folder = _download_cifar(source, cache_root())
        train, test, classes = _read_cifar_folder(source, folder)
        name = source
    else:
        root = Path(source)
        cifar = cifar_layout(root)
        if cifar:
            train, test, classes = _read_cifar_folder(cifar, root / CIFAR_SOURCES[cifar][1])
            name = f"{cifar} ({root})"
        else:
            is_folder = True
            read = functools.partial(_list_folder if path == "stream" else load_folder_cached, rest_size=rest_size)
            train, classes = read(root / "train")
            held_out: dict[str, list[str]] = {}
            if (root / "val").is_dir() and val_size:
                val, held_out["val"] = read(root / "val")
            if (root / "test").is_dir():
                test, held_out["test"] = read(root / "test")
            check_class_folders(root, classes, held_out)
            name = root.name
    if not is_folder and path == "stream":
        raise DataError(f"data_path stream reads image files, and --data {source} is not an ImageFolder; valid for it: auto, memory")
    if isinstance(train, Split) and train.images.shape[-1] != rest_size:
        raise DataError(f"--data {source} holds {train.images.shape[-1]}-pixel images, and this recipe puts images at rest at {rest_size} (eval_resize); valid: eval_resize {train.images.shape[-1]}, or an ImageFolder, which is resized")
    test_source = "folder" if test is not None else "carved"
    val_source = "folder" if val is not None else "carved" if val_size else "none"
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(data_seed))
    sizes = carve_sizes(requested_carves(val_size, test_size, own_val=val is not None, own_test=test is not None), len(train), exact_sizes)
    start = 0
    if "test" in sizes:
        test, start = train.take(order[: sizes["test"]]), sizes["test"]
    if "val" in sizes:
        val, start = train.take(order[start : start + sizes["val"]]), start + sizes["val"]
    train = train.take(order[start:])
    if isinstance(train, FileSplit):
        from search.stream import file_channel_stats  # the loader: only the streaming path needs it

        mean, std = file_channel_stats(train.files[:STATS_IMAGES], rest_size, workers)
    else:
        mean, std = channel_stats([train.images[:STATS_IMAGES] if is_folder else train.images])
    return Dataset(name, train, val, test, len(classes), mean, std, val_source, test_source, tuple(classes), path, rest_size)
