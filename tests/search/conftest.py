"""One real local Ray instance for the whole session, on loopback, in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def ray_environment(tmp: str) -> dict[str, str]:
    return {
        "RAY_TMPDIR": tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # local instances listen on 127.0.0.1 only
    }


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    os.environ.update(ray_environment(str(tmp_path_factory.mktemp("ray"))))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()
