"""Session-wide test environment: data caches under a temp dir, never the user's cache; Ray set
to loopback before anything imports it; registries restored after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ray reads this when first imported, and any test module may import it: set it before them all.
# (tests/search/test_cluster.py checks that a search started without it still binds loopback.)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_worker() -> None:
    """Two pytest-xdist workers share two cores: a test's second torch thread would only wait at
    OpenMP barriers for a core the other worker holds (a smoke run took 7x as long that way).
    Tests that train pass threads=1 for the same reason."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def isolated_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("resbench-data")
        patch.setenv("RESBENCH_DATA", str(root))
        yield root


@pytest.fixture(autouse=True, scope="session")
def isolated_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Inductor's kernel cache for the whole run in a temp dir: shared by its tests, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("inductor")
        patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(root))
        yield root


@pytest.fixture(autouse=True)
def restored_registries() -> Iterator[None]:
    """Blocks, models and spaces a test registers are gone after it, so tests stay independent."""
    from search import spaces
    from zoo import _registry

    saved = [(registry, dict(registry)) for registry in (_registry._BLOCKS, _registry._MODELS, spaces._SPACES, spaces._DECLARED_SAMPLERS)]
    yield
    for registry, contents in saved:
        registry.clear()
        registry.update(contents)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full-smoke", action="store_true", help="also run the tests marked full_smoke: every configuration of a space trained (minutes; CI trains the cheapest)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--full-smoke"):
        skipped = pytest.mark.skip(reason="a full smoke of a space: pytest --full-smoke")
        for item in items:
            if "full_smoke" in item.keywords:
                item.add_marker(skipped)
