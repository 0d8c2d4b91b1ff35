"""Where trials run: a local Ray instance on loopback, or a cluster joined with ``--address``;
how many trials fit at once; and whether every node sees the experiment directory.

Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first imported: a local
instance started by a process that imported Ray without it binds the machine's network address.
So nothing in ``search`` imports Ray at module level before ``connect`` has decided, and a
process that imported Ray earlier without the setting is refused rather than exposed.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.settings import SearchSettings, trial_workers
from zoo.plugins import Plugin

LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's node address is 127.0.0.1
# A trial of several workers is a Ray Train run inside its Tune trial, through the Ray Train API
# that search/workers.py calls (TuneReportCallback, WorkerGroupError, Result.return_value): whole
# from Ray 2.56. One-device trials run on any Ray from the floor in pyproject.toml (2.41), which
# matters on a cluster: the driver's Ray must be the cluster's own release.
RAY_TRAIN_SINCE = (2, 56)


def keep_local_ray_on_loopback() -> None:
    """Make the local instance this process is about to start listen on 127.0.0.1 only."""
    os.environ[LOOPBACK_VARIABLE] = "0"  # read by `import ray` here and by every process Ray spawns
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" in sys.modules:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            raise ValueError(
                f"ray was imported before ResBench could keep its local instance on 127.0.0.1: set {LOOPBACK_VARIABLE}=0 "
                "before importing ray (or anything that imports it), or join a cluster with --address"
            )


def connect(address: str | None, plugins: list[Plugin]) -> bool:
    """Join ``address`` (or RAY_ADDRESS), else start a local instance on loopback only.

    Returns whether this call started Ray (and so should shut it down).
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if not address and not _ray_running():
        keep_local_ray_on_loopback()
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"py_modules": [plugin.path for plugin in plugins]} if plugins else None
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False, runtime_env=runtime_env)
        except Exception as error:  # ConnectionError, TimeoutError, ValueError from ray.init
            raise ValueError(f"cannot reach a Ray cluster at --address {address}: {str(error).splitlines()[0][:160]}") from None
        return True
    ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024, runtime_env=runtime_env)
    return True


def _ray_running() -> bool:
    """A Ray session this process already holds (a test fixture, a notebook) is used as it is."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def disconnect() -> None:
    import ray

    ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """ray.init retries an unreachable GCS for minutes; a plain TCP connect answers in seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ValueError(f"cannot reach a Ray cluster at --address {address}: {error.strerror or error}") from None


# A trial trained by several workers (Ray Train) spends its own process waiting on them: it
# holds no CPU, only this much memory, so that its bundle is not empty (Tune refuses one).
WAITING_TRIAL_MEMORY = 256 * 2**20


@dataclass(frozen=True)
class Resources:
    """What each trial holds, and how many run at once. A trial of several data-parallel
    ``workers`` splits its CPUs evenly among them, and each drives one whole GPU."""

    cpus_per_trial: float
    gpus_per_trial: float
    at_once: int
    workers: int = 1

    @property
    def cpus_per_worker(self) -> float:
        return self.cpus_per_trial / self.workers

    @property
    def gpus_per_worker(self) -> float:
        return self.gpus_per_trial / self.workers

    @property
    def threads(self) -> int:
        """torch threads of each worker (of the trial, when it trains in one process)."""
        return max(1, int(self.cpus_per_worker))

    def trial_bundle(self) -> dict[str, float]:
        """What Tune reserves for the trial's own process."""
        if self.workers == 1:
            return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}
        return {"cpu": 0, "memory": WAITING_TRIAL_MEMORY}

    def describe(self) -> str:
        held = f"{self.cpus_per_trial:g} CPU + {self.gpus_per_trial:g} GPU per trial"
        if self.workers > 1:
            held += f" ({self.workers} data-parallel workers of {self.cpus_per_worker:g} CPU + {self.gpus_per_worker:g} GPU)"
        return f"{held}, {self.at_once} at once"


def trial_resources(settings: SearchSettings) -> Resources:
    """What each trial holds and how many run at once, on the cluster Ray sees."""
    import ray

    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    workers = trial_workers(settings.workers_per_trial, settings.gpus_per_trial)
    if settings.gpus_per_trial is not None:
        gpus_per_trial = settings.gpus_per_trial
    else:
        gpus_per_trial = float(workers) if gpus >= 1 else 0.0
    cpus_per_trial = settings.cpus_per_trial or float(workers)
    whose = f"a trial of {workers} workers" if workers > 1 else "a trial"
    if gpus_per_trial > gpus:
        valid = f"at most {gpus:g}" if gpus else "0 (trials on CPUs), or --address of a cluster with GPUs"
        raise ValueError(f"--gpus-per-trial {gpus_per_trial:g}: {whose} needs {gpus_per_trial:g} GPU(s) but the cluster has {gpus:g}; valid: {valid}")
    if cpus_per_trial > cpus:
        by_default = workers > 1 and not settings.cpus_per_trial
        asked = f"--workers-per-trial {workers} (1 CPU per worker unless --cpus-per-trial says)" if by_default else "--cpus-per-trial"
        raise ValueError(f"{asked}: {whose} needs {cpus_per_trial:g} CPU(s) but the cluster has {cpus:g}; valid: at most {cpus:g} CPU(s) per trial")
    if workers > 1:
        check_ray_train(ray.__version__, workers)
    at_once = int(round(cpus / cpus_per_trial, 6))
    if gpus_per_trial > 0:
        at_once = min(at_once, int(round(gpus / gpus_per_trial, 6)))
    return Resources(cpus_per_trial, gpus_per_trial, max(1, at_once), workers)


def has_ray_train(version: str) -> bool:
    """Whether Ray release ``version`` can train a trial of several workers."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2]) >= RAY_TRAIN_SINCE


def check_ray_train(version: str, workers: int) -> None:
    """Refuse a trial of several workers on a Ray older than RAY_TRAIN_SINCE (one line, before
    anything is written), rather than fail every such trial once it starts."""
    if not has_ray_train(version):
        since = ".".join(map(str, RAY_TRAIN_SINCE))
        raise ValueError(f"a trial of {workers} workers needs Ray {since} or newer (Ray Train's current API), and this is Ray {version}; upgrade Ray, or train one worker per trial")


def _read_probe(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def check_shared_storage(out: Path) -> None:
    """Every node must see the experiment directory (trial outputs and checkpoints live there)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes: list[dict[str, Any]] = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    read_probe = ray.remote(num_cpus=0)(_read_probe)
    probe = out / ".storage-probe"
    token = f"{os.getpid()}-{time.time()}"
    probe.write_text(token)
    try:
        for node in nodes:
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            if not ray.get(read_probe.options(scheduling_strategy=strategy).remote(str(probe), token)):
                raise ValueError(
                    f"the experiment directory {out} is not visible from node {node['NodeID'][:12]} "
                    f"({node['NodeManagerAddress']}): a multi-node search needs storage every node shares (e.g. NFS)"
                )
    finally:
        probe.unlink(missing_ok=True)
