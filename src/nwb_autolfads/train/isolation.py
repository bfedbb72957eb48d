"""Training one model in a child process that holds tensors only (issue 19 item 6).

The process that read the NWB file holds pynwb, hdmf, h5py and the data it read; a model trained
there adds its training footprint (autograd, optimizer, torch's thread pools) on top of all that
(569 MB peak for the 300k-parameter reference configuration vs lfads-torch's 451 MB). Like the
population's workers (:mod:`nwb_autolfads.train.pbt.embedded`), a single model is therefore trained in a
spawned child process that imports only torch and the model and training modules: it receives
the windows, the configuration, the model's initial weights and the torch random state, runs
:func:`~nwb_autolfads.train.loop.train_model` unchanged, and sends back the trained weights, the
:class:`~nwb_autolfads.train.loop.TrainResult` and the random state, so that the caller's model and
random stream continue exactly as if it had trained in place (same weights for the same seed).

What stays as it was: the progress bar (the child writes to the same stderr), the checkpoint
(the child saves and resumes it: a killed run resumes from it), the errors (a
:class:`~nwb_autolfads.errors.NwbAutolfadsError` in the child is raised again in the caller with
its type and one-line message; another exception keeps its type and carries the child's
traceback as a note), Ctrl-C (stops the child, then the caller; no process is left behind, and a
child whose parent died stops itself). :func:`train_single` chooses between the child and the
caller's process from :class:`~nwb_autolfads.train.resources.Execution` (mode ``processes``: a child;
``sequential``: in place, e.g. small models, tests, GPU runs).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path

import torch

from nwb_autolfads.config import AugmentConfig, TrainConfig
from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.resources import (Execution, end_with_parent, nwb_modules_loaded, reuse_freed_memory_for_good, set_threads,
                                          using_threads)
from nwb_autolfads.train.loop import TrainResult, time_steps, train_model
from nwb_autolfads.train.training_data import TrainingData

__all__ = ["train_single", "train_in_child", "planned_steps"]

log = logging.getLogger(__name__)

_STOP_GRACE_S = 10.0
"""Seconds a child is given to stop by itself (after SIGINT) before it is killed."""


def planned_steps(train_cfg: TrainConfig, n_train: int) -> int:
    """The optimisation steps a single model's training may take at most (``train.max_steps``;
    ``n_train`` does not change it: budgets are in steps)."""
    return int(train_cfg.max_steps)


def train_single(model: LFADS, data: TrainingData, cfg: TrainConfig, aug: AugmentConfig, plan: Execution,
                 progress: bool = True, checkpoint: str | Path | None = None, desc: str = "training",
                 timing_model: LFADS | None = None, on_timing=None, seed: int = 0) -> TrainResult:
    """Train ``model`` in place as :func:`~nwb_autolfads.train.loop.train_model` does, in a child
    process when ``plan.mode`` is ``processes`` (:func:`train_in_child`), else in this process
    with ``plan.threads`` intra-op threads. Same arguments, result and errors as ``train_model``.

    With ``timing_model`` (a throwaway of the same architecture), a few steps are first timed on
    it (:func:`~nwb_autolfads.train.loop.time_steps`) where and with the threads training uses (in
    the child: this process never holds a training step's memory), and
    ``on_timing((seconds per step, seconds per check))`` is called before training starts."""
    if plan.mode == "processes":
        result, info = train_in_child(model, data, cfg, aug, threads=plan.threads, progress=progress,
                                      checkpoint=checkpoint, desc=desc, timing_model=timing_model,
                                      on_timing=on_timing, seed=seed)
        log.info("training process %d: peak RSS %.0f MB, %.1f s to start", info["pid"], info["peak_mb"],
                 info["start_s"])
        return result
    with using_threads(plan.threads):
        if timing_model is not None:
            timing = time_steps(timing_model, data, cfg, aug)
            if on_timing is not None:
                on_timing(timing)
        return train_model(model, data, cfg, aug, progress=progress, desc=desc, checkpoint=checkpoint, seed=seed)


def _save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _load(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _peak_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM``, that of its own address space.
    (``ru_maxrss`` of a spawned process also counts its parent's, copied before the exec.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _child_main(conn, payload: bytes) -> None:
    """The child process: train, send back bytes (the result, or the error)."""
    import time

    end_with_parent(_STOP_GRACE_S)
    try:
        job = _load(payload)
        del payload
        set_threads(job["threads"])
        reuse_freed_memory_for_good()  # this process only trains: keep freed buffers for the next step
        architecture = (job["n_channels"], job["model_cfg"], job["observation"], job["session_channels"])
        model = LFADS(*architecture)
        model.load_state_dict(job["state"])
        torch.set_rng_state(job["rng"])  # after the skeleton's own random init: the caller's stream
        conn.send_bytes(pickle.dumps({"started": time.perf_counter()}))
        if job["timing_state"] is not None:  # time a few steps on a throwaway (the RNG is left as it was)
            throwaway = LFADS(*architecture)
            throwaway.load_state_dict(job["timing_state"])
            torch.set_rng_state(job["rng"])
            timing = time_steps(throwaway, job["data"], job["train_cfg"], job["aug"])
            del throwaway
            conn.send_bytes(_save({"timing": timing}))
        result = train_model(model, job["data"], job["train_cfg"], job["aug"],
                             progress=job["progress"], desc=job["desc"], checkpoint=job["checkpoint"],
                             seed=job["seed"])
        del job
        out = {"ok": True, "state": model.state_dict(), "result": result, "rng": torch.get_rng_state(),
               "peak_mb": _peak_mb(), "nwb": nwb_modules_loaded()}
    except KeyboardInterrupt:  # Ctrl-C (the terminal signals the whole group) or the parent stopped us
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one must not cut the exit short
        sys.exit(130)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        tb = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001 - an exception that cannot travel: its type name and message do
            exc = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        out = {"ok": False, "error": exc, "traceback": tb}
    try:
        conn.send_bytes(_save(out))
    except (BrokenPipeError, EOFError, OSError):  # the parent is gone
        sys.exit(1)
    # done: the bytes are in the pipe, the checkpoint is on disk; skip the interpreter's teardown
    # (freeing torch takes seconds on a busy machine, and the caller waits for our exit)
    with contextlib.suppress(Exception):
        from multiprocessing import util

        util._exit_function()  # what the normal exit runs first: e.g. unregister tqdm's lock's semaphore
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _stop(proc) -> None:
    """Stop the child as Ctrl-C would (it saves nothing half-written), then for good."""
    proc.join(1.0)  # after Ctrl-C in a terminal the child got SIGINT too and is stopping
    if proc.is_alive():
        try:
            os.kill(proc.pid, signal.SIGINT)
        except OSError:
            pass
        proc.join(_STOP_GRACE_S)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _receive(here, proc, t0: float, on_timing) -> tuple[dict | None, float]:
    """In the caller: read the child's messages until its result (or its end). Returns the result
    (None if the child ended without one) and the seconds until it was ready to train; the
    timing of a few steps, when it comes first, goes to ``on_timing``."""
    import time
    from multiprocessing.connection import wait

    start_s = math.nan
    while True:
        ready = wait([here, proc.sentinel])
        if here in ready:
            try:
                data = here.recv_bytes()
            except EOFError:
                return None, start_s
            if math.isnan(start_s):
                start_s = time.perf_counter() - t0
                continue
            msg = _load(data)
            if "timing" in msg:  # a few steps timed before training (an error there comes as the result)
                if on_timing is not None:
                    on_timing(msg["timing"])
                continue
            return msg, start_s
        elif not here.poll():
            return None, start_s


def _ended_without_result(proc, checkpoint) -> TrainingError:
    """The error for a child that ended without sending its result (how it ended, what is kept)."""
    code = proc.exitcode
    if code == -signal.SIGKILL:
        how = ("was ended by signal SIGKILL before it finished (the system kills a process so when memory runs "
               "out: try a smaller model or train.batch_size, or free memory)")
    elif code is not None and code < 0:
        how = f"was ended by signal {signal.Signals(-code).name} before it finished"
    else:
        how = f"exited with code {code} before it finished{' (interrupted)' if code == 130 else ''}"
    kept = (f"; the training state saved so far is kept in {str(checkpoint)!r} and a new run with the same "
            "run directory resumes from it" if checkpoint is not None else "")
    return TrainingError(f"the training process (pid {proc.pid}) {how}{kept}")


def _child_error(out: dict, pid: int) -> BaseException:
    """The child's exception, to raise here: a package error as it was, another with the child's
    traceback as a note."""
    from nwb_autolfads.errors import NwbAutolfadsError

    exc = out["error"]
    if not isinstance(exc, NwbAutolfadsError):
        exc.add_note(f"raised in the training process (pid {pid}):\n{out['traceback']}")
    return exc


def train_in_child(model: LFADS, data: TrainingData, cfg: TrainConfig, aug: AugmentConfig, threads: int = 1,
                   progress: bool = True, checkpoint: str | Path | None = None, desc: str = "training",
                   timing_model: LFADS | None = None, on_timing=None, seed: int = 0) -> tuple[TrainResult, dict]:
    """Train ``model`` (on the CPU) in a spawned child process and load the result into it.

    The child imports torch and the model and training modules only (never the NWB stack nor
    the caller's ``__main__`` script), uses ``threads`` intra-op threads, starts from the
    model's weights and this process's torch random state, and runs
    :func:`~nwb_autolfads.train.loop.train_model` with the same arguments. Afterwards ``model``
    holds the trained weights and this process's torch random state is the child's final one:
    the same as training here with the same thread count.

    Parameters
    ----------
    model
        The initialised model, on the CPU; trained in place.
    data
        The windows (:class:`~nwb_autolfads.train.training_data.TrainingData`), on the CPU.
    cfg, aug, progress, checkpoint, desc, seed
        As for :func:`~nwb_autolfads.train.loop.train_model` (the child writes the bar to this
        process's stderr and saves / resumes the checkpoint).
    threads
        Torch intra-op threads of the child.
    timing_model, on_timing
        A throwaway model of the same architecture: the child first times a few steps on it
        (:func:`~nwb_autolfads.train.loop.time_steps`, the random stream left as it was) and
        ``on_timing((seconds per step, seconds per check))`` is called here before it trains.

    Returns
    -------
    result : TrainResult
    info : dict
        ``pid``, ``peak_mb`` (the child's peak RSS), ``start_s`` (seconds until it was ready to
        train) and ``nwb`` (the NWB modules it imported: none).

    Raises
    ------
    NwbAutolfadsError
        What ``train_model`` raised in the child (e.g. :class:`~nwb_autolfads.errors.TrainingError`,
        :class:`~nwb_autolfads.errors.OutputError`), with the same type and message.
    TrainingError
        The child ended without a result (killed, e.g. by the system for lack of memory).
    KeyboardInterrupt
        Ctrl-C; the child is stopped first.
    """
    import multiprocessing
    import time

    from nwb_autolfads.train.pbt.embedded import start_method, without_main_script

    if any(t.device.type != "cpu" for t in (data.train, data.valid, *model.parameters())):
        raise ValueError("train_in_child trains on the CPU: the model and the windows must be on the CPU")
    t0 = time.perf_counter()
    payload = _save({"n_channels": model.n_channels, "model_cfg": model.cfg, "observation": model.observation,
                     "session_channels": model.session_channels,
                     "state": model.state_dict(), "rng": torch.get_rng_state(), "data": data,
                     "train_cfg": cfg, "aug": aug, "threads": int(threads), "progress": progress,
                     "desc": desc, "seed": int(seed), "checkpoint": None if checkpoint is None else str(checkpoint),
                     "timing_state": None if timing_model is None else timing_model.state_dict()})
    ctx = multiprocessing.get_context(start_method())
    here, there = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(there, payload), name="nwb-autolfads-training", daemon=True)
    try:
        with without_main_script():
            proc.start()
        there.close()
        del payload
        out, start_s = _receive(here, proc, t0, on_timing)
        proc.join()
    except BaseException:
        _stop(proc)
        raise
    finally:
        here.close()
    if out is None:
        raise _ended_without_result(proc, checkpoint)
    if not out["ok"]:
        raise _child_error(out, proc.pid) from None
    model.load_state_dict(out["state"])
    torch.set_rng_state(out["rng"])
    return out["result"], {"pid": proc.pid, "peak_mb": out["peak_mb"], "start_s": start_s, "nwb": out["nwb"]}
