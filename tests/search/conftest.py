"""One real local Ray instance for the whole session, on loopback, in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

# A smoke recipe cut to seconds: search tests check the engine, not the learning.
FAST = ["train_subset=128", "val_size=64", "test_size=64", "eval_batch_size=64"]


def fast_recipe(*items: str) -> dict[str, str]:
    """FAST with more KEY=VALUE items, as run_search's recipe."""
    return dict(item.split("=") for item in (*FAST, *items))


def load_study(out: Path, name: str) -> optuna.Study:
    """A search's Optuna study, read from its journal file."""
    from search.study import STUDY_FILE

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE)))
    return optuna.load_study(study_name=name, storage=storage)


def ray_environment(tmp: str) -> dict[str, str]:
    return {
        "RAY_TMPDIR": tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # local instances listen on 127.0.0.1 only
    }


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    temporary = short_temp_dir()
    os.environ.update(ray_environment(temporary))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(temporary, ignore_errors=True)


def short_temp_dir() -> str:
    """Ray's socket paths must stay under 107 bytes; pytest's temp paths can be longer."""
    return tempfile.mkdtemp(prefix="rbray", dir="/tmp")


@pytest.fixture(scope="session")
def shortcuts_run(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main job's grid capped at its first two configurations (depth 20, shortcuts A and B;
    the plan's tests cover the whole grid), 2 seeds, with its VGG baseline; every trial waits at
    a barrier until two have arrived, so the search is seen to run two trials at once."""
    from search.run import main
    from search.testing import BARRIER_VARIABLE

    root = tmp_path_factory.mktemp("shortcuts")
    out = root / "experiment"
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--seeds", "2", "--trials", "4", "--out", str(out), "--recipe", *FAST, "epochs=1"]
    os.environ[BARRIER_VARIABLE] = f"{root / 'barrier'}:2"
    try:
        assert main(args) == 0
    finally:
        del os.environ[BARRIER_VARIABLE]
    return out
