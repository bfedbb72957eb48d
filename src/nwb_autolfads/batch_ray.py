"""A batch's inputs as Ray tasks, so that the machines of a Ray cluster share a dandiset
(``nwb-autolfads run DANDI:... --backend ray [--ray-address HEAD:6379]``; ``pip install "nwb-autolfads[ray]"``).

:class:`RayTasks` connects to the cluster at an address, or starts a private local Ray instance
bound to 127.0.0.1 (one CPU per core this process may use) that it shuts down at the end; an
instance already running in this process is used as is. :meth:`RayTasks.map` runs one function
over many arguments as Ray tasks, at most ``jobs`` in flight, and hands each task's returned
value to the driver as it comes: the batch's manifest and progress are written by the driver
alone (:mod:`nwb_autolfads.batch`). Only Ray's public core API is used (``ray.init``,
``ray.remote``, ``ray.wait``, ``ray.get``, ``ray.cancel``, ``ray.cluster_resources``,
``ray.shutdown``).

What one run needs (:func:`run_resources`): ``pbt.workers`` x ``train.threads`` CPUs, each 0
(auto) counting as 1, so by default a run trains its population as one stacked program on one
thread (the most training per core for these small latency-bound models; benchmarks/README.md)
and the cluster's CPUs are spread over the inputs rather than within one; the run is told to use
exactly those (``pbt.workers``, ``train.threads``), and trains embedded (never Ray within Ray).
With a CUDA device each task also takes one GPU; otherwise the runs train on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from nwb_autolfads.train.pbt import ray_cluster

__all__ = ["RayTasks", "TaskResources", "import_ray", "run_resources", "is_remote"]

log = logging.getLogger(__name__)


def import_ray():
    """The ``ray`` module (:func:`nwb_autolfads.train.pbt.ray_cluster.import_ray`).

    Raises
    ------
    ConfigError
        Ray is not installed (the message names the extra to install).
    """
    return ray_cluster.import_ray("--backend ray (a batch's inputs as Ray tasks; or leave it out: local worker "
                                  "processes, --jobs N)")


@dataclass(frozen=True)
class TaskResources:
    """What one run's Ray task asks for, and how the run is told to use only that."""

    cpus: int
    """CPUs of the task: ``pbt.workers`` x ``train.threads`` (0 counting as 1)."""
    gpus: int
    """GPUs of the task: 1 with a CUDA device, else 0."""
    device: str
    """The device each run is given (``cuda``: the task's GPU; else ``cpu``)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Settings added to each run's: embedded training with the task's CPUs (execution settings
    only, :data:`nwb_autolfads.batch.EXECUTION_KEYS`: the same batch)."""

    def describe(self) -> str:
        threads, workers = self.overrides["train.threads"], self.overrides["pbt.workers"]
        how = f"{workers} worker process(es) x {threads} thread(s)" if workers > 1 else \
            f"one process, {threads} thread(s)"
        return (f"{self.cpus} CPU(s) each ({how}; --set pbt.workers=N / train.threads=N give a run more)"
                + (", 1 GPU each" if self.gpus else ", on the CPU (--device cuda: 1 GPU each)"))


def run_resources(resolved: Mapping[str, Any], device: str | None) -> TaskResources:
    """The resources of one run's task (see the module's description).

    Parameters
    ----------
    resolved : mapping
        The batch's resolved configuration as a dict (sections ``train`` and ``pbt``).
    device : str, optional
        The device asked for (``cuda``, ``cuda:N``, ``cpu``); None: the CPU.
    """
    threads = max(1, int(resolved.get("train", {}).get("threads") or 0))
    pbt = resolved.get("pbt", {})
    workers = max(1, int(pbt.get("workers") or 0)) if int(pbt.get("population") or 1) > 1 else 1
    gpus = 1 if device and str(device).startswith("cuda") else 0
    return TaskResources(cpus=threads * workers, gpus=gpus, device="cuda" if gpus else "cpu",
                         overrides={"pbt.backend": "embedded", "train.threads": threads, "pbt.workers": workers})


def is_remote(address: str | None) -> bool:
    """Whether a Ray address may name other machines: any address but none (a private local
    instance) and this machine's own (``localhost``, ``127.x``, ``::1``, its host name)."""
    if not address:
        return False
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]").lower()
    return not (host in ("localhost", "::1", socket.gethostname().lower()) or host.startswith("127."))


class RayTasks:
    """A Ray connection for running a batch's inputs as tasks (a context manager).

    Parameters
    ----------
    address : str, optional
        A running cluster (``HEAD:6379``, ``auto``); None starts a private local instance
        (127.0.0.1), shut down on exit.

    Raises
    ------
    ConfigError
        Ray is not installed.
    """

    def __init__(self, address: str | None = None):
        self.ray = import_ray()
        self.address = address
        self.started = False

    def __enter__(self) -> "RayTasks":
        self.started = ray_cluster.connect(self.ray, self.address)
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def slots(self, jobs: int | None, res: TaskResources) -> tuple[int, str]:
        """(tasks in flight, how that was chosen): ``jobs`` when given, else the cluster's CPUs
        divided by a run's (and at most its GPUs when a run takes one)."""
        total = self.ray.cluster_resources()
        cpus, gpus = int(total.get("CPU", 1)), int(total.get("GPU", 0))
        where = f"the cluster's {cpus} CPU(s)" + (f" and {gpus} GPU(s)" if res.gpus else "")
        if jobs is not None:
            return jobs, f"--jobs {jobs} (of {where})"
        n = max(1, cpus // res.cpus)
        if res.gpus:
            n = max(1, min(n, gpus))
        return n, f"{where} / {res.cpus} CPU(s) per run"

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple], *, jobs: int, res: TaskResources,
            started: Callable[[int], None], finished: Callable[[int, Any, str], None]) -> None:
        """Run ``fn(*calls[k])`` for every k as Ray tasks, at most ``jobs`` at once, in order of
        ``calls``; ``started(k)`` before task k is submitted, ``finished(k, value, error)`` when it
        ends (``error``: "" or, when the task itself failed (its worker or node died), one line
        naming it). On an interrupt the tasks in flight are cancelled."""
        ray = self.ray
        task = ray.remote(fn).options(num_cpus=res.cpus, num_gpus=res.gpus, max_retries=1)
        pending, running = list(range(len(calls))), {}
        try:
            while pending or running:
                while pending and len(running) < max(1, jobs):
                    k = pending.pop(0)
                    started(k)
                    running[task.remote(*calls[k])] = k
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    k = running.pop(ref)
                    try:
                        value, error = ray.get(ref), ""
                    except ray.exceptions.RayError as exc:
                        lines = str(exc).strip().splitlines()
                        value, error = None, f"{type(exc).__name__}: {lines[-1] if lines else ''}".strip()
                    finished(k, value, error)
        except BaseException:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
