"""The cores this process may use, and how training uses them (threads, worker processes).

Small recurrent models (LFADS with 32-64-unit GRUs, batches of 16-32 windows) are
latency-bound: a training step is hundreds of small matrix products, and a second intra-op
thread per process gains little while it costs a core. On a CPU a population is therefore
spread over worker processes with one thread each (a population of the smallest models as one
stacked program per worker process, :mod:`.stacked`), and threads are given to one process only
when it trains alone. ``benchmarks/threads.py`` measures this (the table is in
``benchmarks/README.md``); :func:`choose_execution` encodes the rule.

Never more threads than cores: :func:`available_cores` counts the cores the process may really
use (CPU affinity, the cgroup's CPU quota of a container or batch job), not those the machine
has, and every process sets its thread count so that workers x threads <= cores.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["end_with_parent", "available_cores", "Execution", "choose_execution", "refuse_stacked_sessions", "set_threads", "using_threads", "idle_cores", "nwb_modules_loaded", "SMALL_MODEL_WIDTH",
           "MODES", "CHILD_MIN_WORK", "reuse_freed_memory", "reusing_freed_memory",
           "reuse_freed_memory_for_good"]

MODES = ("stacked", "stacked-processes", "processes", "sequential")

SMALL_MODEL_WIDTH = 64
"""Models whose widest recurrent layer (encoders, controller, generator) has at most this many
units are "small": latency-bound on a CPU, so a second intra-op thread does not pay, and a
population of them trains fastest as one stacked program (issue 19: 4.2x for 20 64-unit
members on one thread). Wider models fill a thread's matrix products and train as separate
members."""

CHILD_MIN_WORK = 1e7
"""A single model trains in a child process (spawned, without the NWB stack and the data read
from the file: issue 19 item 6) when its planned training is at least this many parameter-steps
(parameters x planned optimisation steps), e.g. the 300k-parameter reference model for 50 steps
or a 50k-parameter EMG model for 200. Below it the training is a few seconds at most, and the
child's start (a Python importing torch: 1.5-3.5 s measured, benchmarks/README.md) would cost
more than the memory it saves; such a model trains in the caller's process."""

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")



def end_with_parent(grace: float = 10.0) -> bool:
    """In a process started by :mod:`multiprocessing` (a training child, a PBT worker, a batch
    job): when the parent ends without stopping it (killed with SIGKILL, or SIGTERM without
    cleanup), stop as Ctrl-C would (a checkpoint being written stays whole) and exit for good
    after ``grace`` seconds. Without it, a batch's jobs and a run's PBT workers kept running, orphaned,
    after their parent was killed. Returns whether a watch was started (not in the main process)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def watch() -> None:
        import _thread
        import time

        parent.join()  # returns when the parent's end of the sentinel pipe closes
        _thread.interrupt_main()
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()
    return True

def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cores(quota: float, period: float) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _ancestors(root: Path, rel: str) -> list[Path]:
    """``root/rel`` and every directory above it up to ``root`` (a limit anywhere above applies)."""
    parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    return [root.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]


def _cgroup_cores(root: Path, proc_cgroup: Path) -> int | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), rounded up to whole cores; None when there is no quota."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    limits = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, rel = fields
        if controllers == "":  # cgroup v2: "0::/path"
            for d in _ancestors(root, rel) + _ancestors(root / "unified", rel):
                value = _read(d / "cpu.max")
                if value:
                    quota, _, period = value.partition(" ")
                    if quota != "max":
                        try:
                            limits.append(_quota_cores(float(quota), float(period or 100000)))
                        except ValueError:
                            pass
        elif "cpu" in controllers.split(","):  # cgroup v1: "N:cpu,cpuacct:/path"
            for mount in dict.fromkeys([controllers, "cpu,cpuacct", "cpuacct,cpu", "cpu"]):
                for d in _ancestors(root / mount, rel):
                    quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                    if quota and period:
                        try:
                            limits.append(_quota_cores(float(quota), float(period)))
                        except ValueError:
                            pass
    limits = [n for n in limits if n is not None]
    return min(limits) if limits else None


def available_cores(cgroup_root: str | Path = _CGROUP_ROOT, proc_cgroup: str | Path = _PROC_CGROUP) -> int:
    """The cores this process may really use: the smallest of ``os.cpu_count()``, its CPU
    affinity (``os.sched_getaffinity``; e.g. ``taskset``, a batch job's allocation) and the CPU
    quota of its cgroup (a container's ``--cpus``: v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``, rounded up to whole cores). At least 1.

    Parameters
    ----------
    cgroup_root, proc_cgroup
        Where the cgroup file system is mounted and the file naming this process's cgroups
        (tests give fake ones).
    """
    counts = [os.cpu_count() or 1]
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            counts.append(len(os.sched_getaffinity(0)))
    quota = _cgroup_cores(Path(cgroup_root), Path(proc_cgroup))
    if quota is not None:
        counts.append(quota)
    return max(1, min(counts))


@dataclass(frozen=True)
class Execution:
    """How training uses the machine.

    ``mode``: ``stacked`` (the whole population as one tensor program in this process),
    ``stacked-processes`` (the members split into ``workers`` contiguous blocks, each block one
    stacked program in its own worker process, the workers in parallel),
    ``processes`` (members spread over ``workers`` worker processes; for one model, ``workers``
    is 1: it trains in one child process) or ``sequential`` (one member after another, or one
    model, in this process). ``threads``: torch intra-op threads of
    each training process (``workers x threads <= cores`` on a CPU). ``reason``: one line."""

    mode: str
    workers: int
    threads: int
    reason: str

    def describe(self) -> str:
        """One line for the run's plan, e.g. ``processes: 2 workers x 1 thread (...)``."""
        if self.mode == "processes" and self.workers == 1:
            how = f"1 child process x {self.threads} thread{'s' if self.threads > 1 else ''}"
        elif self.mode == "processes":
            how = f"{self.workers} worker processes x {self.threads} thread{'s' if self.threads > 1 else ''}"
        elif self.mode == "stacked-processes":
            how = (f"{self.workers} worker processes x {self.threads} thread{'s' if self.threads > 1 else ''}, "
                   "each training a block of the members as one stacked program")
        else:
            how = f"1 process, {self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{self.mode}: {how} ({self.reason})"


def model_width(model_cfg, n_channels: int) -> int:
    """The widest recurrent layer of the model (units): what decides whether it is latency-bound."""
    widths = [model_cfg.ic_enc_dim, model_cfg.gen_dim]
    if model_cfg.co_dim > 0:
        widths += [model_cfg.ci_enc_dim, model_cfg.con_dim]
    return max(widths)


def idle_cores(cores: int) -> int:
    """Of ``cores``, those not busy with other programs (by the 1-minute load average, this
    process counted as one of the busy): at least 1."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # pragma: no cover - not on every system
        return cores
    return max(1, min(cores, int(cores - max(0.0, load - 1.0) + 0.5)))


def choose_execution(population: int, model_cfg, n_channels: int, device: str = "cpu", cores: int | None = None,
                     *, execution: str = "auto", workers: int = 0, threads: int = 0,
                     stacked_available: bool = True, idle: int | None = None, work: float = 0.0,
                     sessions: int = 1) -> Execution:
    """Choose between stacked, process-parallel and sequential training, and the threads.

    On a CPU, ``auto`` trains a population of small models (:data:`SMALL_MODEL_WIDTH`) as
    ``stacked-processes`` when two or more cores are idle: the members in one contiguous block
    per worker process (one per idle core, at most one per member), each block one stacked
    program on one thread, the workers in parallel (issue 19: one stacked program runs on one
    core); with one idle core (or ``pbt.workers`` 1) as ``stacked`` in this process. Cores that
    other programs keep busy do not count: Linux shares the CPU between sessions (autogroup), so
    a second process of ours got no more CPU there (measured on 2 cores at load 4-7: the split
    0.8-1.1x the speed of one stacked process, benchmarks/README.md). Wider models train
    in ``processes`` (a member per task), or ``sequential`` on one core.

    Parameters
    ----------
    population
        Members trained together (1: a single model).
    model_cfg, n_channels
        The model (:class:`~nwb_autolfads.config.ModelConfig`) and its input channels.
    device
        ``cpu`` or ``cuda`` (the resolved device).
    cores
        Cores available (default :func:`available_cores`).
    execution
        ``auto`` or a mode the user chose (``pbt.execution``); a chosen mode is kept (a worker
        mode on a GPU, or with one core or one member, trains in this process instead).
    workers
        ``pbt.workers``: 0 chooses; an explicit number is kept (1: no worker processes), with
        threads lowered so that workers x threads <= cores.
    threads
        ``train.threads``: 0 chooses; an explicit number is kept, capped by the cores (a worker
        count that needs fewer is lowered to ``cores // workers``, at least 1).
    stacked_available
        Whether the stacked executor can train this population (False falls back).
    idle
        Cores not busy with other programs (default: from the load average when ``cores`` is
        not given, else all). A second intra-op thread is given to a process only where two
        cores are idle for it: a thread that must share its core with another program makes
        every step wait for it (measured on 2 shared cores: 8-12x slower than one thread,
        benchmarks/README.md).
    sessions
        Sessions the model stitches (:class:`~nwb_autolfads.train.training_data.TrainingData`'s
        ``n_sessions``): with two or more, a population never trains stacked (the stacked program
        has no per-session read-ins and read-outs), and the reason says so.
    work
        For one model: its planned training in parameter-steps (parameters x planned steps). On
        a CPU with ``execution`` ``auto`` a model with at least :data:`CHILD_MIN_WORK` trains in a
        child process (mode ``processes``, 1 worker), a smaller one in this process
        (``sequential``); ``processes`` or ``sequential`` chosen by the user are kept. On a GPU one
        model trains in this process.

    Returns
    -------
    Execution

    Raises
    ------
    ConfigError
        ``execution`` is not a mode, or a stacked mode for a model of several ``sessions``.
    """
    refuse_stacked_sessions(execution, sessions)
    if sessions > 1 and population > 1:
        plan = choose_execution(population, model_cfg, n_channels, device, cores, execution=execution,
                                workers=workers, threads=threads, stacked_available=False, idle=idle, work=work)
        return replace(plan, reason=f"{plan.reason}; {sessions} sessions: a stitched model never trains stacked (the "
                                    "stacked program has no per-session read-ins and read-outs)")
    if cores is None:
        cores = available_cores()
        idle = idle_cores(cores) if idle is None else idle
    cores = max(1, int(cores))
    idle = cores if idle is None else max(1, min(cores, int(idle)))
    if execution not in ("auto",) + MODES:
        from nwb_autolfads.errors import ConfigError

        raise ConfigError(f"invalid config value pbt.execution={execution!r}: use auto, stacked, stacked-processes, "
                          "processes or sequential")
    width = model_width(model_cfg, n_channels)
    m = _Machine(cores, idle, threads, str(device).startswith("cuda"), width, width <= SMALL_MODEL_WIDTH)
    if population <= 1:
        return _single_model_execution(m, execution, work)
    mode = _population_mode(m, execution, workers, population, stacked_available)
    asked = ""
    if mode in ("processes", "stacked-processes"):
        plan, mode, asked = _worker_execution(m, mode, execution, workers, population)
        if plan is not None:
            return plan
    return _in_process_execution(m, mode, execution, workers, population, asked)


def refuse_stacked_sessions(mode: str, sessions: int) -> None:
    """Raise :class:`~nwb_autolfads.errors.ConfigError` when a stacked ``mode`` (``pbt.execution``)
    is asked for a model of several ``sessions``: the stacked program trains single-session models only."""
    if sessions > 1 and mode in ("stacked", "stacked-processes"):
        from nwb_autolfads.errors import ConfigError

        raise ConfigError(f"pbt.execution={mode} cannot train a model of {sessions} sessions (the stacked program has "
                          "no per-session read-ins and read-outs): use --set pbt.execution=auto, processes or "
                          "sequential")


@dataclass
class _Machine:
    """What :func:`choose_execution` chooses for: cores, idle cores, ``train.threads`` (0: choose),
    a GPU or not, the model's widest layer and whether it is small."""

    cores: int
    idle: int
    threads: int
    on_gpu: bool
    width: int
    small: bool

    def cap(self, n: int, per: int) -> int:
        """Threads for each of ``per`` processes: ``n``, or ``train.threads`` capped by the cores."""
        limit = max(1, self.cores // per)
        return min(self.threads, limit) if self.threads > 0 else n


def _single_model_execution(m: _Machine, execution: str, work: float) -> Execution:
    """One model: on the GPU, or in this process or a child process with 1-2 threads."""
    if m.on_gpu:
        return Execution("sequential", 1, m.cap(1, 1), "one model on the GPU; one host thread feeds it")
    if m.threads > 0:
        n, why = m.cap(m.threads, 1), f"one model, train.threads = {m.threads}, {m.cores} cores"
    else:
        n = 1 if m.small else min(2, m.idle)
        why = (f"one model with {m.width}-unit layers is latency-bound: a second thread does not pay" if m.small else
               f"one model with {m.width}-unit layers: {n} thread{'s' if n > 1 else ''} of {m.cores} cores")
    if execution == "processes" or (execution == "auto" and work >= CHILD_MIN_WORK):
        return Execution("processes", 1, n, why + "; in a child process given the windows only (no NWB stack)"
                         if execution == "auto" else why + "; in a child process (pbt.execution = processes)")
    return Execution("sequential", 1, n, why)


def _population_mode(m: _Machine, execution: str, workers: int, population: int, stacked_available: bool) -> str:
    """The mode for a population: the user's, or ``auto``'s choice, made possible on this device."""
    mode = execution
    stackable = m.small and stacked_available
    if mode == "auto" and workers > 1:
        mode = "stacked-processes" if stackable else "processes"
    elif mode == "auto" and workers == 1:
        mode = "stacked" if stackable else "sequential"
    if mode == "auto":
        if m.on_gpu:
            mode = "stacked" if stacked_available else "sequential"
        elif stackable:  # split only over idle cores: busy ones give a session no more CPU for more processes
            mode = "stacked-processes" if min(population, m.idle) > 1 else "stacked"
        elif m.cores > 1:
            mode = "processes"
        else:
            mode = "sequential"
    if m.on_gpu and mode in ("processes", "stacked-processes"):  # worker processes train on the CPU only
        mode = "sequential" if mode == "processes" else "stacked"
    if not stacked_available and mode in ("stacked", "stacked-processes"):
        mode = "sequential" if mode == "stacked" else "processes"
    return mode


def _worker_execution(m: _Machine, mode: str, execution: str, workers: int, population: int
                      ) -> tuple[Execution | None, str, str]:
    """A worker mode's plan, or (None, the in-process mode to use instead, why) when no worker
    processes would pay."""
    cores, idle, width = m.cores, m.idle, m.width
    asked = ""
    n_workers = workers if workers > 0 else min(population, idle if execution == "auto" and
                                                 mode == "stacked-processes" else cores)
    if n_workers <= 1 and execution == mode and min(population, cores) > 1:
        # the user asked for processes; a worker count of 1 (e.g. the smoke preset's) would run none
        n_workers = min(population, cores)
        asked = f"pbt.execution = {mode} with pbt.workers = {workers}: {n_workers} worker processes instead"
    if n_workers <= 1:
        alone = "sequential" if mode == "processes" else "stacked"
        if execution == mode:
            asked = (f"pbt.execution = {mode}, but {cores} core{'s' if cores > 1 else ''} for {population} "
                     "member(s): no worker processes would pay, so "
                     + ("one after another" if alone == "sequential" else "one stacked program in this process"))
        return None, alone, asked
    if mode == "stacked-processes":
        share = -(-population // n_workers)
        why = asked or (f"pbt.workers = {workers}" if workers > 0 else
                        f"{population} members of {width}-unit layers (<= {SMALL_MODEL_WIDTH}) over {n_workers} "
                        f"idle cores of {cores}: a worker process per core, each training its block of at most "
                        f"{share} members as one stacked program, the workers in parallel")
        return Execution("stacked-processes", n_workers, m.cap(1, n_workers), why), mode, asked
    n_threads = m.cap(1 if m.small else max(1, min(2, idle // n_workers)), n_workers)
    why = asked or (f"pbt.workers = {workers}" if workers > 0 else
                    f"{population} members of {width}-unit layers over {cores} cores: a process per core (at "
                    "most one per member), as latency-bound steps gain more from processes than from threads")
    return Execution("processes", n_workers, n_threads, why), mode, asked


def _in_process_execution(m: _Machine, mode: str, execution: str, workers: int, population: int,
                          asked: str) -> Execution:
    """``stacked`` or ``sequential`` in this process, with the threads."""
    cores, idle, on_gpu = m.cores, m.idle, m.on_gpu
    if mode == "stacked":
        n_threads = m.cap(1 if on_gpu else idle, 1)
        why = (f"{population} members as one program on the GPU" if on_gpu else
               f"{population} members of {m.width}-unit layers (<= {SMALL_MODEL_WIDTH}) as one stacked program "
               f"on {n_threads} thread{'s' if n_threads > 1 else ''}")
        if execution == "auto" and workers == 0 and not on_gpu and cores > 1 and idle < 2 and population > 1:
            why += (f" (of {cores} cores, other programs keep all but {idle} busy: worker processes would share "
                    "its time)")
        return Execution("stacked", 1, n_threads, f"{why}; {asked}" if asked else why)
    n_threads = m.cap(1 if on_gpu or m.small else min(2, idle), 1)
    why = ("members one after another on the GPU" if on_gpu else
           f"members one after another on {n_threads} thread{'s' if n_threads > 1 else ''} ({cores} core"
           f"{'s' if cores > 1 else ''})")
    return Execution("sequential", 1, n_threads, f"{why}; {asked}" if asked else why)


def set_threads(n: int) -> None:
    """Use ``n`` intra-op threads in this process from now on: torch's, and the BLAS/OpenMP pools
    numpy and scipy use (through threadpoolctl, when it is installed). For a worker process."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return
    threadpool_limits(n)


@contextlib.contextmanager
def using_threads(n: int):
    """Use ``n`` intra-op threads (torch, and BLAS through threadpoolctl when installed) inside
    the block, and the previous numbers after it: for training in the caller's process."""
    import torch

    before = torch.get_num_threads()
    n = max(1, int(n))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        threadpool_limits = None
    limits = threadpool_limits(n) if threadpool_limits is not None else contextlib.nullcontext()
    with limits:
        if before != n:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_REUSE_BYTES = 1 << 30
# what glibc's dynamic thresholds reach for blocks up to 32 MB (its DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
_DYNAMIC_MMAP_MAX, _DYNAMIC_TRIM_MAX = 32 << 20, 64 << 20


def _glibc():
    """This process's glibc (ctypes), or None where the C library is another."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # pragma: no cover - glibc without the usual soname
        return None


def _mallopt(libc, pairs) -> bool:
    """Set glibc malloc parameters (key, value) with ``mallopt``; whether every one was taken."""
    import ctypes

    return all(libc.mallopt(ctypes.c_int(key), ctypes.c_int(value)) == 1 for key, value in pairs)


def _user_thresholds() -> tuple[int, int]:
    """The mmap and trim thresholds to set back: the user's own (``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_``, or ``glibc.malloc.mmap_threshold`` / ``trim_threshold`` in
    ``GLIBC_TUNABLES``), else what glibc's dynamic thresholds reach (32 MB / 64 MB)."""
    tunables = dict(item.split("=", 1) for item in os.environ.get("GLIBC_TUNABLES", "").split(":") if "=" in item)

    def given(env: str, tunable: str, default: int) -> int:
        for text in (os.environ.get(env), tunables.get(tunable)):
            try:
                return int(text, 0)
            except (TypeError, ValueError):
                continue
        return default

    return (given("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", _DYNAMIC_MMAP_MAX),
            given("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", _DYNAMIC_TRIM_MAX))


def reuse_freed_memory(enable: bool = True) -> bool:
    """Keep the large blocks training frees in this process's heap, to be reused by the next
    step, instead of handing them back to the system and faulting fresh pages in again.

    glibc's malloc serves every block larger than its mmap threshold (raised dynamically, but to
    32 MB at most) with a fresh ``mmap``, returned on free: every page of such a block is then
    faulted in and zeroed by the kernel again at each use. The buffers of a stacked population's
    recurrences (:mod:`.stacked`) exceed 32 MB from about 10 EMG-sized members (the encoders'
    gate factors of 10 members: 40 directions x 100 bins x 16 windows x 4 x 32 floats, 33 MB):
    measured on one thread (``benchmarks/pbt_speed.py --sweep``), a 10-step generation of 10
    stacked members took 124,000 page faults, of 20 members 667,000 (about none with this set: a
    few thousand where a small block lands right after a freed large one and leaves a hole that
    glibc 2.36's padded aligned allocation does not fit, so the heap grows by that buffer once).
    A single model's buffers stay under the dynamic threshold and fault only once. The numbers
    computed do not change (same bits either way: tested).

    ``enable``: blocks up to 1 GB from the heap, and the heap never trimmed; False: set back to
    the user's own thresholds where the environment gives them (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``), else to what the dynamic thresholds reach
    (32 MB / 64 MB: glibc cannot turn its dynamic thresholds back on), then the freed heap is
    trimmed. Returns whether it was set: False on a C library other than glibc (nothing to do
    there: e.g. macOS's allocator keeps freed blocks itself) and on a glibc that refuses a 1 GB
    mmap threshold (older releases cap it at 32 MB): nothing is changed then. Memory: the
    process keeps its training peak until the end (or ``enable=False``), which a training
    process reaches anyway.
    """
    import ctypes

    libc = _glibc()
    if libc is None:
        return False
    if enable:  # a trim threshold of -1: never trim (a working set above any fixed one would be re-faulted)
        if not _mallopt(libc, [(_M_MMAP_THRESHOLD, _HEAP_REUSE_BYTES)]):  # refused: nothing was changed
            log.debug("this glibc refuses a 1 GB mmap threshold: freed training buffers are not kept")
            return False
        return _mallopt(libc, [(_M_TRIM_THRESHOLD, -1)])
    mmap_threshold, trim_threshold = _user_thresholds()
    done = _mallopt(libc, [(_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold)])
    libc.malloc_trim(ctypes.c_size_t(0))
    return done


# set for good (a worker that only trains); blocks open in any thread of this process
_REUSING = {"for_good": False, "depth": 0, "set": False}
_REUSING_LOCK = threading.Lock()


@contextlib.contextmanager
def reusing_freed_memory():
    """:func:`reuse_freed_memory` inside the block (training in the caller's process), set back
    and trimmed when the last open block ends (blocks nest and may be open in several threads at
    once: a population's training holds one around all its generations, each stacked generation
    its own; two runs in threads share the setting until both end); in a process where it is set
    for good (a training worker: see :func:`reuse_freed_memory_for_good`), nothing changes.
    Yields whether it is set."""
    with _REUSING_LOCK:
        if not _REUSING["for_good"] and _REUSING["depth"] == 0:
            _REUSING["set"] = reuse_freed_memory(True)
        _REUSING["depth"] += 1
        on = _REUSING["for_good"] or _REUSING["set"]
    try:
        yield on
    finally:
        with _REUSING_LOCK:
            _REUSING["depth"] -= 1
            if _REUSING["depth"] == 0 and _REUSING["set"] and not _REUSING["for_good"]:
                reuse_freed_memory(False)
                _REUSING["set"] = False


def reuse_freed_memory_for_good() -> bool:
    """:func:`reuse_freed_memory` for the rest of this process (a worker process that only
    trains: its peak is its training's)."""
    with _REUSING_LOCK:
        _REUSING["for_good"] = reuse_freed_memory(True)
        return _REUSING["for_good"]


NWB_STACK = ("pynwb", "hdmf", "h5py", "zarr", "hdmf_zarr")


def nwb_modules_loaded() -> list[str]:
    """The modules of the NWB stack (pynwb, hdmf, h5py, zarr) this process has imported: none in
    a training process, which needs tensors only."""
    import sys

    return sorted(m for m in list(sys.modules) if m.split(".")[0] in NWB_STACK)
