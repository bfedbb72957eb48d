"""Training one LFADS model (docs/science.md, Training objective; Augmentations).

Loss per batch = reconstruction NLL (mean over the elements coordinated dropout hid from the
encoder) + ramp * (kl_ic_scale * KL(g0) + kl_co_scale * KL(u)) (per window, mean over windows)
+ ramp * (l2_gen_scale * L2(generator) + l2_con_scale * L2(controller)) with
L2(W) = 0.5 * sum(W^2) / numel(W). The KL and L2 weights ramp linearly from 0 to 1 over
``ramp_steps`` optimisation steps. The optimised quantity is ``loss_scale * loss`` (gradient
clipping acts on that scale). Every budget is counted in steps (batches), not epochs, so a longer
recording costs no more steps: the model is validated every ``valid_every`` steps on a fixed,
bounded subset of the validation windows; the learning rate decays when the smoothed validation
NLL plateaus (``lr_patience`` checks); training stops early when it has not improved for
``early_stopping_patience`` steps, and the best weights (by smoothed validation NLL) are the result.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.config import AugmentConfig, TrainConfig
from nwb_autolfads.train.cudagraphs import evaluation_forward, training_forward
from nwb_autolfads.errors import OutputError, StateFormatError, TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.seeds import SeedTree, Streams

if TYPE_CHECKING:
    from nwb_autolfads.train.training_data import TrainingData

__all__ = ["TrainResult", "train_model", "train_steps", "time_steps", "WindowSampler", "validation_subset", "split_train_valid", "evaluate_nll", "observed", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT", "rng_state", "set_rng_state", "ramp_weight"]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    """One record per validation check: step (steps trained), train_nll (mean over the steps since
    the previous check), valid_nll, smoothed_valid_nll, kl_ic, kl_co, l2, lr."""
    best_step: int = 0
    """Steps trained when the best (smoothed) validation NLL was reached: the weights returned."""
    best_valid_nll: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    nan_recoveries: int = 0
    pbt_history: list[dict] | None = None
    """Population-based training: one row per generation x member (hyperparameters, metric, parent)."""
    hyperparameters: dict | None = None
    """The hyperparameters of the result (the winner's, for population-based training)."""
    pbt_summary: dict | None = None
    """Population size, generations, winner and its lineage."""
    execution: str = ""
    """How training used the machine (:meth:`nwb_autolfads.train.resources.Execution.describe`): mode,
    processes, threads and why."""


def split_train_valid(n_windows: int, valid_every: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``valid_every``-th window (starting at the last of the first block) is held out.
    With fewer than ``valid_every`` windows the last one is held out. Needs >= 2 windows."""
    idx = np.arange(n_windows)
    valid = idx[valid_every - 1::valid_every]
    if valid.size == 0:
        valid = idx[-1:]
    train = np.setdiff1d(idx, valid)
    return train, valid


def ramp_weight(step: int, ramp_steps: int) -> float:
    """Weight of the KL and L2 terms at (0-based) step ``step``: linear from 0 to 1 over ``ramp_steps``."""
    return 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)


def _l2(model: LFADS, cfg: TrainConfig) -> torch.Tensor:
    weights = model.recurrent_weights()
    scales = {"gen": cfg.l2_gen_scale, "con": cfg.l2_con_scale}
    total = torch.zeros((), device=weights["gen"].device)
    for key, w in weights.items():
        total = total + scales[key] * 0.5 * w.pow(2).sum() / w.numel()
    return total


@torch.no_grad()
def evaluate_nll(model: LFADS, x: torch.Tensor, batch_size: int = 256, held: torch.Tensor | None = None,
                 held_rate: float = 0.0, graphs: bool = True, mask: torch.Tensor | None = None,
                 session: torch.Tensor | None = None) -> float:
    """Mean NLL per element with posterior means and no augmentation (the validation metric).

    With ``held`` (a 0/1 mask like x), the held elements are hidden from the encoder (inputs
    scaled by 1 / (1 - held_rate)) and the NLL is averaged over them only: the sample-validation
    metric. ``mask`` (0/1 like x, :class:`~nwb_autolfads.train.training_data.TrainingData`'s): the
    unobserved elements (0) reach the encoder as 0 and the mean is over the observed ones only.
    ``session`` (N,): the session of each window (a model of several sessions). ``graphs``: on a
    GPU, replay the pass from a CUDA graph (:mod:`.cudagraphs`; not with ``session``)."""
    was_training = model.training
    model.eval()
    L = model.cfg.lead_in_bins  # the lead-in is input only
    total, count = 0.0, 0.0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        sb = None if session is None else session[i:i + batch_size]
        if held is None and mask is None:
            out = evaluation_forward(model, xb, graphs, session=sb)  # model(xb, sample=False)
            total += float(model.observation.nll(out.params, xb[:, L:]).sum())
            count += xb[:, L:].numel()
        elif mask is None:
            hb = held[i:i + batch_size]
            out = evaluation_forward(model, xb * (1.0 - hb) / (1.0 - held_rate), graphs, session=sb)
            total += float((model.observation.nll(out.params, xb[:, L:]) * hb[:, L:]).sum())
            count += float(hb[:, L:].sum())
        else:
            mb = mask[i:i + batch_size]
            enc = observed(xb, mb)
            if held is not None:
                hb = held[i:i + batch_size]
                enc, mb = enc * (1.0 - hb) / (1.0 - held_rate), mb * hb
            out = evaluation_forward(model, enc, graphs, session=sb)
            nll = model.observation.nll(out.params, observed(xb[:, L:], mb[:, L:], fill=1.0))
            total += float((nll * mb[:, L:]).sum())
            count += float(mb[:, L:].sum())
    model.train(was_training)
    return total / max(count, 1.0)


def observed(x: torch.Tensor, mask: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """x with ``fill`` where ``mask`` is 0 (an unobserved element: 0 for the encoder, and for a
    loss a value every observation model's NLL is finite at (1.0), so that its zero weight gives
    zero gradients, never NaN: a Gamma's NLL at x = 0 is not finite)."""
    return torch.where(mask > 0, x, torch.full_like(x, fill))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_FORMAT = 2
"""The format of the training-state files this version writes (their ``format`` entry): raised
whenever what a checkpoint holds changes (keys, their meaning, the seed tree). Checkpoints of the
versions before it hold no ``format`` (1: other keys, objects unpickled without ``weights_only``)."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` atomically, with ``format`` = :data:`CHECKPOINT_FORMAT`: a temporary file
    beside ``path``, then a rename, so a crash never leaves a half-written checkpoint.

    Raises
    ------
    OutputError
        The file cannot be written (disk full, folder missing or read-only).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({**state, "format": CHECKPOINT_FORMAT}, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"could not save the training state to {str(path)!r}: {exc.strerror or exc}: check free "
                          "disk space and permissions") from None
    except RuntimeError as exc:  # torch's own file errors (a missing folder, a failed write) are RuntimeErrors
        raise OutputError(f"could not save the training state to {str(path)!r}: {_first_line(exc)}: check "
                          "that its folder exists and is writable, and free disk space") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint of :func:`save_checkpoint` of this version's :data:`CHECKPOINT_FORMAT`, read
    with ``weights_only=True``: only tensors and plain types are unpickled, so a run directory
    cannot make this process run code.

    Raises
    ------
    StateFormatError
        The file is not a checkpoint of this format: one of another version of this package (one
        that stored objects, or other keys), or a damaged file. Nothing is deleted.
    """
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests loading it anyway: not to be repeated
        raise StateFormatError(_unreadable_state(path, "it holds objects, not only tensors and plain values, and "
                                                       "is not loaded")) from None
    except Exception as exc:  # empty (EOFError, no message), truncated or garbage (RuntimeError, KeyError, ...)
        raise StateFormatError(_unreadable_state(path, f"it cannot be read: {_first_line(exc)}")) from None
    found = ck.get("format", 1) if isinstance(ck, dict) else "unknown"
    if found != CHECKPOINT_FORMAT:
        raise StateFormatError(_unreadable_state(path, f"checkpoint format {found}, this version reads "
                                                       f"{CHECKPOINT_FORMAT}"))
    return ck


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type's description (an empty
    file gives an ``EOFError`` without a message)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines:
        return lines[0]
    return "the file is empty or ends early" if isinstance(exc, EOFError) else type(exc).__name__


def _unreadable_state(path: Path, why: str) -> str:
    """The one-line message for a checkpoint this version cannot resume from: the run directory,
    the file, why, and the two ways on."""
    return (f"the run directory {str(path.parent)!r} holds training state ({path.name}) written by another version "
            f"of nwb-autolfads or damaged ({why}): this version cannot resume it. Run again with --fresh (and without "
            "--resume), which moves it aside (nothing is deleted) and starts afresh, or finish the run with the nwb-autolfads "
            "version that wrote it")


class WindowSampler:
    """Batches of training-window indices for a step budget: a shuffled permutation of the
    windows consumed by a cursor that continues from step to step; when the permutation is
    used up a new one is drawn (from ``generator``, or torch's global RNG when None). The last
    batch of a permutation holds what is left (it may be smaller than ``batch_size``), so every
    window is seen once per pass and none is dropped. ``state()`` / ``load()`` carry the
    permutation and cursor in a checkpoint (not the generator's state)."""

    def __init__(self, n_windows: int, batch_size: int, generator: torch.Generator | None = None):
        self.n, self.batch_size = int(n_windows), int(batch_size)
        self.generator = generator
        self.order: torch.Tensor | None = None
        self.cursor = 0

    def next(self) -> torch.Tensor:
        """The indices of the next batch, (B,) int64 (on the generator's device; the CPU without one)."""
        if self.order is None or self.cursor >= self.n:
            gen = self.generator
            self.order = torch.randperm(self.n) if gen is None else torch.randperm(self.n, generator=gen,
                                                                                   device=gen.device)
            self.cursor = 0
        idx = self.order[self.cursor:self.cursor + self.batch_size]
        self.cursor += idx.numel()
        return idx

    def state(self) -> dict:
        return {"order": self.order, "cursor": self.cursor}

    def load(self, state: dict) -> None:
        self.order, self.cursor = state["order"], int(state["cursor"])


def validation_subset(n_windows: int, max_windows: int) -> np.ndarray:
    """Indices of at most ``max_windows`` of ``n_windows`` windows, spread evenly over them
    (first and last included): the fixed subset every validation check evaluates, so a check
    costs the same on a short and a long recording."""
    if n_windows <= max_windows:
        return np.arange(n_windows)
    return np.unique(np.round(np.linspace(0, n_windows - 1, max_windows)).astype(np.int64))


def _batch_views(xb: torch.Tensor, hb: torch.Tensor | None, mb: torch.Tensor | None, sv_rate: float,
                 shift: TemporalShift, augment: torch.Generator | None):
    """A batch's reconstruction target, encoder input (before coordinated dropout) and the 0/1
    weights of its usable target elements (None: all), each (B, T, C), with the shifts drawn in
    :func:`train_steps`' order. ``hb``: sample-validation elements (hidden, never in the loss);
    ``mb``: the data's mask (unobserved elements: 0 for the encoder, never in the loss)."""
    if hb is None and mb is None:
        return shift(xb, generator=augment), shift(xb, generator=augment), None
    if mb is None:  # held-out elements: zeroed for the encoder, and no loss on them
        target, usable = shift(xb, 1.0 - hb, generator=augment)
        return target, shift(xb * (1.0 - hb) / (1.0 - sv_rate), generator=augment), usable
    usable = mb if hb is None else mb * (1.0 - hb)
    enc = observed(xb, mb)
    if hb is not None:
        enc = enc * (1.0 - hb) / (1.0 - sv_rate)
    target, usable = shift(xb, usable, generator=augment)
    return observed(target, usable, fill=1.0), shift(enc, generator=augment), usable


def train_steps(model: LFADS, opt: torch.optim.Optimizer, train_x: torch.Tensor, cfg: TrainConfig,
                cd: CoordinatedDropout, shift: TemporalShift, sampler: WindowSampler, n_steps: int,
                start_step: int = 0, held: torch.Tensor | None = None,
                sv_rate: float = 0.0, on_step=None, generator: torch.Generator | None = None,
                streams: Streams | None = None, mask: torch.Tensor | None = None,
                session: torch.Tensor | None = None) -> tuple[dict[str, float] | None, int]:
    """``n_steps`` optimisation steps on batches of ``train_x`` (N, T, C) drawn by ``sampler``;
    step ``start_step + i`` uses the KL/L2 ramp weight ``min(1, (start_step + i) / ramp_steps)``.
    Returns (the mean reconstruction NLL, KL and L2 terms over the steps, steps done); the
    dict is None if the loss became NaN/inf (the caller recovers; the steps done then include
    the diverged one, whose update was not applied). ``on_step()`` is called after every step
    (a progress bar).

    ``mask`` (N, T, C) 0/1 (the data's, :class:`~nwb_autolfads.train.training_data.TrainingData`):
    unobserved elements reach the encoder as 0 and never enter the loss (the reconstruction NLL is
    the mean over the observed elements the encoder did not see). ``session`` (N,) int64: the
    session of each window, given to the model (a model of several sessions; runs eagerly, no
    CUDA graph).

    ``streams`` (:class:`~nwb_autolfads.train.seeds.Streams`): where the random draws come from,
    per purpose (``generator``: one generator for all of them). Per step, in this order: the batch
    (``sampler``, which must draw from ``streams.batches``), from ``streams.augment`` the temporal
    shift of the reconstruction target, then of the encoder input, then the coordinated-dropout
    mask, and from ``streams.noise`` the model's draws (:meth:`.model.LFADS.forward`: dropout masks
    and posterior noise). The stacked population (:func:`.stacked.stacked_steps`) draws exactly
    this, in this order. With a ``noise`` generator the forward pass runs eagerly (no CUDA graph);
    without (None) the model draws from torch's default generator.

    Raises
    ------
    ValueError
        ``sampler`` does not draw from ``streams.batches``, or both ``generator`` and ``streams``
        are given.
    """
    if generator is not None:
        if streams is not None:
            raise ValueError("train_steps: give generator or streams, not both")
        streams = Streams.single(generator)
    if streams is not None and sampler.generator is not streams.batches:
        raise ValueError("train_steps: the sampler must draw from the generator given (WindowSampler(..., "
                         "generator=generator)), or the batch order would not follow the member's stream")
    augment = streams.augment if streams is not None else None
    noise = streams.noise if streams is not None else None
    model.train()
    lead_in = model.cfg.lead_in_bins
    sums = {"nll": 0.0, "kl_ic": 0.0, "kl_co": 0.0, "l2": 0.0}
    n_done = 0
    for i in range(n_steps):
        ramp = ramp_weight(start_step + i, cfg.ramp_steps)
        idx = sampler.next()
        target, enc_in, usable = _batch_views(train_x[idx], None if held is None else held[idx],
                                              None if mask is None else mask[idx], sv_rate, shift, augment)
        enc_in, cd_mask = cd(enc_in, generator=augment)
        if usable is not None:
            cd_mask = cd_mask * usable
        sb = None if session is None else session[idx]
        if noise is None:
            out = training_forward(model, enc_in, graphs=cfg.cuda_graphs, session=sb)  # model(enc_in, sample=True)
        else:
            out = model(enc_in, sample=True, generator=noise, session=sb)
        target, cd_mask = target[:, lead_in:], cd_mask[:, lead_in:]  # the lead-in is input only
        nll = model.observation.nll(out.params, target)  # (B, T, C)
        recon = (nll * cd_mask).sum() / cd_mask.sum().clamp_min(1.0)
        kl_ic, kl_co = out.kl_ic.mean(), out.kl_co.mean()
        l2 = _l2(model, cfg)
        loss = recon + ramp * (cfg.kl_ic_scale * kl_ic + cfg.kl_co_scale * kl_co + l2)
        n_done += 1
        if not torch.isfinite(loss):
            return None, n_done
        opt.zero_grad(set_to_none=True)
        (cfg.loss_scale * loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sums["nll"] += recon.item()
        sums["kl_ic"] += kl_ic.item()
        sums["kl_co"] += kl_co.item()
        sums["l2"] += l2.item()
        del out, nll, recon, kl_ic, kl_co, l2, loss  # let go of this step's autograd nodes before the next
        # step, which may capture a CUDA graph for a new batch shape (torch warns about nodes kept alive)
        if on_step is not None:
            on_step()
    return {k: v / max(n_done, 1) for k, v in sums.items()}, n_done


class _SingleTraining:
    """The state of one model's training: what a checkpoint of :func:`train_model` holds."""

    def __init__(self, model: LFADS, train_x: torch.Tensor, cfg: TrainConfig, aug: AugmentConfig, seed: int):
        self.model, self.cfg, self.aug = model, cfg, aug
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="min", factor=cfg.lr_decay,
                                                                patience=cfg.lr_patience, min_lr=cfg.lr_min)
        tree = SeedTree(seed)
        self.streams = tree.streams(device=train_x.device, noise=False)  # the model's draws: torch's default
        tree.seed_default_noise()  # generator (a CUDA-graph replay draws from it), seeded from the tree
        self.sampler = WindowSampler(train_x.shape[0], cfg.batch_size, generator=self.streams.batches)
        self.cd, self.shift = CoordinatedDropout(aug.cd_rate), TemporalShift(aug.shift_std, aug.shift_max)
        self.result = TrainResult()
        self.best_state = copy.deepcopy(model.state_dict())
        self.best_opt = copy.deepcopy(self.opt.state_dict())
        self.smoothed: float | None = None
        self.step = 0
        # sample validation: a fixed set of training elements the model never learns from; its metric
        # is evaluated on a fixed subset of the training windows, as the validation NLL is
        self.held = None
        if aug.sv_rate > 0:
            draw = torch.rand(train_x.shape, generator=tree.torch("sample_validation"))
            self.held = (draw < aug.sv_rate).to(train_x.dtype).to(train_x.device)
            self.sv_idx = torch.as_tensor(validation_subset(train_x.shape[0], cfg.valid_windows),
                                          device=train_x.device)

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "best_model": self.best_state, "best_optimizer": self.best_opt,
                "smoothed": self.smoothed, "sampler": self.sampler.state(), "rng": rng_state(),
                "streams": self.streams.state(), "sv_mask": self.held, "result": dataclasses.asdict(self.result)}

    def load_state_dict(self, ck: dict) -> None:
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.sampler.load(ck["sampler"])
        self.best_state, self.best_opt = ck["best_model"], ck["best_optimizer"]
        self.smoothed, self.step = ck["smoothed"], ck["step"]
        self.result = TrainResult(**ck["result"])
        set_rng_state(ck["rng"])
        self.streams.load(ck["streams"])
        if self.held is not None:
            self.held = ck["sv_mask"].to(self.held.device)

    def recover(self) -> None:
        """After a NaN/inf loss or validation: the last good weights, with half the learning rate.

        Raises
        ------
        TrainingError
            The sixth divergence.
        """
        self.result.nan_recoveries += 1
        if self.result.nan_recoveries > 5:
            raise TrainingError("training diverged (NaN/inf loss) 5 times even after lowering the "
                                "learning rate: lower train.lr or check the input data")
        self.model.load_state_dict(self.best_state)
        self.opt.load_state_dict(self.best_opt)
        for group in self.opt.param_groups:
            group["lr"] = max(group["lr"] * 0.5, self.cfg.lr_min)

    def record(self, sums: dict[str, float], valid_nll: float, train_x: torch.Tensor,
               data: "TrainingData | None" = None) -> dict:
        """A good check: smooth the validation NLL, append the history row, keep the best weights
        and step the learning-rate schedule; returns the row. ``data``: the training data whose
        windows ``train_x`` are (its mask and sessions, for the sample-validation metric)."""
        cfg, result = self.cfg, self.result
        s = self.smoothed
        self.smoothed = valid_nll if s is None else cfg.smoothing * s + (1 - cfg.smoothing) * valid_nll
        row = {"step": self.step, "train_nll": sums["nll"], "valid_nll": valid_nll,
               "smoothed_valid_nll": self.smoothed, "kl_ic": sums["kl_ic"], "kl_co": sums["kl_co"],
               "l2": sums["l2"], "lr": self.opt.param_groups[0]["lr"]}
        if self.held is not None:
            mask, session = (None, None) if data is None else (data.train_mask, data.train_session)
            row["sample_valid_nll"] = evaluate_nll(
                self.model, train_x[self.sv_idx], held=self.held[self.sv_idx], held_rate=self.aug.sv_rate,
                graphs=cfg.cuda_graphs, mask=None if mask is None else mask[self.sv_idx],
                session=None if session is None else session[self.sv_idx])
        result.history.append(row)
        # Only compare once the loss is fully weighted (after the ramp: the last step had ramp < 1
        # while step <= ramp_steps).
        if self.smoothed < result.best_valid_nll or self.step <= cfg.ramp_steps:
            result.best_valid_nll, result.best_step = self.smoothed, self.step
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_opt = copy.deepcopy(self.opt.state_dict())
        if self.step > cfg.ramp_steps:
            self.sched.step(self.smoothed)
        return row

    def should_stop(self) -> bool:
        """Early stopping: the smoothed NLL has not improved for ``early_stopping_patience`` steps
        (not before ``min_steps`` nor the end of the ramp)."""
        cfg = self.cfg
        return (self.step >= max(cfg.min_steps, cfg.ramp_steps)
                and self.step - self.result.best_step >= cfg.early_stopping_patience)


def _mark_stopped(bar, desc: str, run: _SingleTraining) -> None:
    """The bar ends full, with a mark of why."""
    bar.total = bar.n
    bar.set_description(f"{desc}: stopped early at step {run.step} of at most {run.cfg.max_steps} (no improvement "
                        f"of the smoothed validation NLL for {run.step - run.result.best_step} steps)", refresh=False)
    bar.refresh()


def train_model(model: LFADS, data: "TrainingData", cfg: TrainConfig, aug: AugmentConfig, progress: bool = True,
                desc: str = "training", checkpoint: str | Path | None = None, seed: int = 0) -> TrainResult:
    """Train ``model`` in place on ``data`` (:class:`~nwb_autolfads.train.training_data.TrainingData`:
    its ``train`` windows (N, T, C)) for at most ``cfg.max_steps`` optimisation steps; restore the
    best weights.

    Every ``cfg.valid_every`` steps the model is validated on a fixed subset of at most
    ``cfg.valid_windows`` windows of ``data.valid`` (:func:`validation_subset`); the validation
    NLL is smoothed, the learning rate decays after ``cfg.lr_patience`` checks without
    improvement, and training stops once the smoothed NLL has not improved for
    ``cfg.early_stopping_patience`` steps (not before ``min_steps`` nor the end of the ramp).
    ``TrainResult.history`` holds one row per check, with its ``step`` (steps trained).

    ``seed``: the run's seed; the batches, augmentations, sample-validation mask and the model's
    draws come from its seed tree (:mod:`nwb_autolfads.train.seeds`; the model's draws through
    torch's default generator, seeded here).

    With ``checkpoint``, the full training state (model, optimizer, scheduler, random streams,
    batch order and cursor, step, best weights so far, history) is saved atomically after every
    check, and if the file already exists training resumes from it: an interrupted run
    continued this way ends with the same weights as an uninterrupted one.

    Raises
    ------
    ValueError
        ``model`` does not fit ``data``.
    TrainingError
        Training diverged 6 times.
    OutputError
        The checkpoint cannot be written.
    StateFormatError
        The checkpoint is of another format (another version of this package): it is kept.
    """
    data.check_model(model)
    train_x, valid = data.train, data.validation_subset(cfg.valid_windows)
    run = _SingleTraining(model, train_x, cfg, aug, seed)
    if checkpoint is not None and Path(checkpoint).exists():
        run.load_state_dict(load_checkpoint(checkpoint))
    t0 = time.perf_counter() - run.result.seconds
    # the total (and so the ETA) is the step limit: early stopping usually ends sooner, and then
    # the bar is closed full and says so
    bar = tqdm(total=cfg.max_steps, initial=run.step, desc=f"{desc} (at most {cfg.max_steps} steps)",
               unit="step", disable=not progress, dynamic_ncols=True, leave=True)
    try:
        while run.step < cfg.max_steps and not run.result.stopped_early:
            n = min(cfg.valid_every - run.step % cfg.valid_every, cfg.max_steps - run.step)
            sums, done = train_steps(model, run.opt, train_x, cfg, run.cd, run.shift, run.sampler, n, run.step,
                                     run.held, aug.sv_rate, on_step=lambda: bar.update(1), streams=run.streams,
                                     mask=data.train_mask, session=data.train_session)
            run.step += done
            valid_nll = evaluate_nll(model, valid.valid, graphs=cfg.cuda_graphs, mask=valid.valid_mask,
                                     session=valid.valid_session) if sums is not None else math.nan
            if sums is None or not math.isfinite(valid_nll):
                run.recover()  # the last good weights with a smaller learning rate, and go on
                bar.update(1 if sums is None else 0)
                continue
            row = run.record(sums, valid_nll, train_x, data)
            # valid_nll: this check's (raw); smoothed / best_smoothed: what early stopping compares
            bar.set_postfix(valid_nll=f"{valid_nll:.4f}", smoothed=f"{run.smoothed:.4f}",
                            best_smoothed=f"{run.result.best_valid_nll:.4f}", lr=f"{row['lr']:.1e}", refresh=False)
            if run.should_stop():
                run.result.stopped_early = True
                _mark_stopped(bar, desc, run)
            if checkpoint is not None:
                run.result.seconds = time.perf_counter() - t0
                save_checkpoint(checkpoint, run.state_dict())
    finally:
        bar.close()
    model.load_state_dict(run.best_state)
    run.result.seconds = time.perf_counter() - t0
    return run.result


def time_steps(model: LFADS, data: "TrainingData", cfg: TrainConfig, aug: AugmentConfig,
               n_steps: int = 3) -> tuple[float, float]:
    """Seconds per training step and per validation check, measured on ``model`` (a throwaway:
    it is trained) with one warm-up step then ``n_steps`` timed steps, and one check of the
    validation subset. Torch's RNG is left as it was (the run's results do not depend on the
    measurement); CUDA graphs are not used (a throwaway model must not enter their cache)."""
    train_x, subset = data.train, data.validation_subset(cfg.valid_windows)
    extras = {"mask": data.train_mask, "session": data.train_session}
    rng = rng_state()
    try:
        cfg = dataclasses.replace(cfg, cuda_graphs=False)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        cd, shift = CoordinatedDropout(aug.cd_rate), TemporalShift(aug.shift_std, aug.shift_max)
        sampler = WindowSampler(train_x.shape[0], cfg.batch_size)
        train_steps(model, opt, train_x, cfg, cd, shift, sampler, 1, **extras)  # warm-up (allocations, kernels)
        sync = torch.cuda.synchronize if train_x.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        train_steps(model, opt, train_x, cfg, cd, shift, sampler, n_steps, **extras)
        sync()
        per_step = (time.perf_counter() - t0) / n_steps
        t0 = time.perf_counter()
        evaluate_nll(model, subset.valid, graphs=False, mask=subset.valid_mask, session=subset.valid_session)
        sync()
        per_check = time.perf_counter() - t0
    finally:
        set_rng_state(rng)
    return per_step, per_check
