"""Session-wide test environment: data caches under a temp dir, never the user's cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def isolated_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("resbench-data")
    previous = os.environ.get("RESBENCH_DATA")
    os.environ["RESBENCH_DATA"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("RESBENCH_DATA", None)
    else:
        os.environ["RESBENCH_DATA"] = previous
