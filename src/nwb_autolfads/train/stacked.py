"""A population of small LFADS models trained as one stacked tensor program (AutoLFADS on a CPU).

Small recurrent models are latency-bound on a CPU: a training step of an EMG-sized LFADS (64-unit
generator, batch 16, ~100 bins) spends most of its time issuing thousands of tiny operations, not
computing them. Training the M members of a population one after another pays that overhead M
times. Here every parameter of the M members is stacked with a leading member dimension, every
matrix product becomes a batched one (``baddbmm`` / ``bmm``, through the hand-written recurrences
of :mod:`.recurrence`), and one step of the stacked program is one step of every member: the
overhead is paid once.

Contract: a generation trained stacked gives the same weights, Adam states, metrics and history
rows (to float rounding) as the members trained one after another by :func:`.pbt.member.train_generation`
(the sequential and process executors: the ordinary :class:`~.model.LFADS` module, ``torch.optim.Adam``
and :func:`.training.train_steps` with the member's ``generator``). Both draw every random number of
a member from the member-generation's own streams (:func:`.pbt.member.member_streams`: batches,
augmentations, the model's draws),
in the same order per step:

1. the batch: the next indices of a :class:`.training.WindowSampler` (a random permutation of the
   training windows drawn afresh each generation, read ``batch_size`` at a time; the last batch of
   a permutation holds what is left);
2. the temporal shifts of the reconstruction target, then of the encoder input;
3. the coordinated-dropout draw;
4. the model's draws (:meth:`.model.LFADS.forward`): input dropout, CI-encoder dropout,
   IC-encoder dropout, g0 noise, generator dropout masks, inferred-input noise.

Everything else is per member too: learning rate (Adam), dropout, coordinated-dropout rate, the
KL and L2 weights, the KL/L2 ramp (from the member's own step count over ``train.ramp_steps``),
gradient clipping (each member's own global norm), Adam's step count and moments, and the
validation checks (whenever the member's own step count reaches a multiple of
``train.valid_every``, and at the generation's end, on the fixed validation subset). A member whose
loss becomes NaN/inf stops for the rest of the generation with its last good weights (metric NaN),
as on the one-member path. Members never interact: member m's slice is computed only from member
m's slices.

:class:`StackedExecutor` trains a generation of :class:`.pbt.member.Member` objects this way
(``pbt.execution: stacked``), or a contiguous block of them in each worker process
(``stacked-processes``: :class:`.pbt.embedded._SplitExecutor`); exploit/explore between generations
copies weights, Adam state and hyperparameters through :meth:`.pbt.member.Member.load` (or
:meth:`StackedPopulation.copy` in the stacked tensors).
"""

from __future__ import annotations

import math
import time

import torch

from nwb_autolfads.model.augment import TemporalShift
from nwb_autolfads.config import AugmentConfig, ModelConfig, TrainConfig
from nwb_autolfads.model.lfads import LFADS, _gaussian_log_prob, dropout_mask
from nwb_autolfads.train.pbt.member import Member, member_streams, record_check
from nwb_autolfads.train.seeds import Streams
from nwb_autolfads.model.recurrence import controlled_generator, gru_gates, stacked_gru
from nwb_autolfads.train.loop import WindowSampler, ramp_weight
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.resources import refuse_stacked_sessions, reusing_freed_memory

__all__ = ["StackedPopulation", "stacked_steps", "StackedExecutor", "time_stacked"]

_STATS = ("nll", "kl_ic", "kl_co", "l2")


# ------------------------------------------------------------------------------- stacked model
def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member linear map: x (M, ..., K), w (M, N, K), b (M, N) or None -> (M, ..., N)."""
    M, lead, K = x.shape[0], x.shape[1:-1], x.shape[-1]
    x2 = x.reshape(M, -1, K)
    out = torch.bmm(x2, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), x2, w.transpose(1, 2))
    return out.view(M, *lead, w.shape[1])


def _lag(x: torch.Tensor, lag: int, forward: bool) -> torch.Tensor:
    """Lag encoder states (M, T, B, H) by ``lag`` bins along time (see :meth:`.model.LFADS._lag`)."""
    T = x.shape[1]
    lag = min(lag, T)
    if lag == 0:
        return x
    if forward:
        return torch.cat([torch.zeros_like(x[:, :lag]), x[:, : T - lag]], dim=1)
    return torch.cat([x[:, lag:], torch.zeros_like(x[:, :lag])], dim=1)


def _stacked_encoders(P: dict[str, torch.Tensor], cfg: ModelConfig, x: torch.Tensor, d: dict):
    """The IC and CI encoders of :func:`stacked_forward` for M members: the final IC encoder
    states (M, B, 2E) (dropout applied) and the lagged CI encoder states, time-major
    (M, T, B, 2Ec), or None without a controller."""
    (M, B, _, C), L, co = x.shape, cfg.lead_in_bins, cfg.co_dim > 0
    # ---- encoders: the directions of the same size and length run as one batched recurrence (as in
    #      LFADS.encode), every direction's input projection done in its own processing order (the
    #      backward directions read the time-reversed input), so the large projections are never
    #      copied, flipped or re-stacked
    inputs = {"ic_encoder": x, "ci_encoder": x[:, :, L:]}
    hidden = {"ic_encoder": cfg.ic_enc_dim, "ci_encoder": cfg.ci_enc_dim}
    directions = [(e, rev) for e in (["ic_encoder", "ci_encoder"] if co else ["ic_encoder"]) for rev in (False, True)]
    states = {}  # (encoder, reverse) -> (M, T, B, H) in the direction's processing order
    for key in sorted({(hidden[e], inputs[e].shape[2]) for e, _ in directions}):
        group = [(e, rev) for e, rev in directions if (hidden[e], inputs[e].shape[2]) == key]
        H, Tg, D = key[0], key[1], len(group)
        sfx = ["_reverse" if rev else "" for _, rev in group]
        xs = [inputs[e].transpose(1, 2) for e, _ in group]  # (M, T, B, C)
        xin = torch.stack([xt.flip(1) if rev else xt for xt, (_, rev) in zip(xs, group)], dim=1)  # (M, D, T, B, C)
        w_ih = torch.stack([P[f"{e}.weight_ih_l0{s}"] for (e, _), s in zip(group, sfx)], dim=1)  # (M, D, 3H, C)
        b_ih = torch.stack([P[f"{e}.bias_ih_l0{s}"] for (e, _), s in zip(group, sfx)], dim=1)
        gi = torch.baddbmm(b_ih.reshape(M * D, 1, 3 * H), xin.reshape(M * D, Tg * B, C),
                           w_ih.reshape(M * D, 3 * H, C).transpose(1, 2)).view(M * D, Tg, B, 3 * H)
        w_hh = torch.stack([P[f"{e}.weight_hh_l0{s}"] for (e, _), s in zip(group, sfx)], dim=1)  # (M, D, 3H, H)
        b_hh = torch.stack([P[f"{e}.bias_hh_l0{s}"] for (e, _), s in zip(group, sfx)], dim=1)
        hs = stacked_gru(gi, w_hh.reshape(M * D, 3 * H, H), b_hh.reshape(M * D, 3 * H)).view(M, D, Tg, B, H)
        states.update(zip(group, hs.unbind(1)))
    # final state of each direction (the backward direction's last processed bin is bin 0)
    ic_enc = torch.cat([states[("ic_encoder", False)][:, -1], states[("ic_encoder", True)][:, -1]], dim=-1)
    ci = None
    if co:  # lagged CI encoder states, time-major (M, T, B, 2Ec) (dropout mask drawn (B, T, 2Ec) per member)
        fwd = _lag(states[("ci_encoder", False)], cfg.ci_lag, True)
        bwd = _lag(states[("ci_encoder", True)].flip(1), cfg.ci_lag, False)
        ci = torch.cat([fwd, bwd], dim=-1)
        if d.get("ci") is not None:
            ci = ci * d["ci"].transpose(1, 2)
    if d.get("ic") is not None:
        ic_enc = ic_enc * d["ic"]
    return ic_enc, ci


def stacked_forward(P: dict[str, torch.Tensor], cfg: ModelConfig, n_params: int, x: torch.Tensor,
                    draws: dict[str, torch.Tensor | None] | None, sample: bool):
    """The forward pass of :class:`.model.LFADS` (same equations, same order of operations) for M
    members at once.

    Parameters
    ----------
    P : the members' parameters by ``LFADS`` parameter name, each (M, *shape).
    x : (M, B, L + T, C) encoder input of every member.
    draws : the members' dropout masks and posterior noise (see :func:`_draw`), or None (no
        dropout: validation).
    sample : use the noise in ``draws`` (training) or the posterior means.

    Returns
    -------
    params (M, B, T, C, P), kl_ic (M, B), kl_co (M, B).
    """
    d = draws or {}
    M, B, _, C = x.shape
    L, clip = cfg.lead_in_bins, cfg.cell_clip
    T = x.shape[2] - L
    co = cfg.co_dim > 0
    if d.get("x") is not None:
        x = x * d["x"]

    ic_enc, ci = _stacked_encoders(P, cfg, x, d)  # (M, B, 2E), (M, T, B, 2Ec) or None

    # ---- initial condition
    ic_mean, ic_logvar = _linear(ic_enc, P["ic_posterior.weight"], P["ic_posterior.bias"]).chunk(2, dim=-1)
    ic_std = torch.sqrt(ic_logvar.exp() + cfg.ic_post_var_min)
    ic = ic_mean + ic_std * d["ic_noise"] if sample else ic_mean
    pv = cfg.ic_prior_var
    kl_ic = 0.5 * (math.log(pv) - 2 * ic_std.log() + (ic_std**2 + ic_mean**2) / pv - 1).sum(-1)  # (M, B)
    g = torch.clamp(_linear(ic, P["ic_to_g0.weight"], P["ic_to_g0.bias"]), -clip, clip)  # (M, B, G)

    # ---- controller + generator
    masks = d.get("gen")  # (M, T + 1, B, G) or None
    W_f = P["to_factors.weight"]
    if co:
        Ec2 = 2 * cfg.ci_enc_dim
        w_ih = P["controller.weight_ih"]
        ci_gates = _linear(ci, w_ih[:, :, :Ec2], P["controller.bias_ih"])  # (M, T, B, 3Cn)
        w_gc = torch.bmm(w_ih[:, :, Ec2:], W_f)  # (M, 3Cn, G)
        c0 = P["con_h0"].unsqueeze(1).expand(M, B, -1)
        kept, u, u_mean, u_std = controlled_generator(
            ci_gates, g, c0, w_gc, P["controller.weight_hh"], P["controller.bias_hh"], P["co_posterior.weight"],
            P["co_posterior.bias"], P["generator.weight_ih"], P["generator.bias_ih"], P["generator.weight_hh"],
            P["generator.bias_hh"], masks, d.get("co_noise") if sample else None, clip)  # (M, T, B, .)
        factors = _linear(kept, W_f).transpose(1, 2)  # (M, B, T, F)
        # KL of the inferred inputs, time-major (M, T, B, U): AR(1) prior along dim 1
        log_q = _gaussian_log_prob(u, u_mean, u_std).sum(dim=(1, 3))
        phi = torch.exp(-1.0 / P["co_prior.log_tau"].exp())[:, None, None, :]  # (M, 1, 1, U)
        var = P["co_prior.log_var"].exp()[:, None, None, :]
        mean = torch.cat([torch.zeros_like(u[:, :1]), phi * u[:, :-1]], dim=1)
        cond_var = torch.cat([var.expand_as(u[:, :1]), (var * (1 - phi**2)).expand_as(u[:, 1:])], dim=1)
        log_p = (-0.5 * (math.log(2 * math.pi) + cond_var.log() + (u - mean) ** 2 / cond_var)).sum(dim=(1, 3))
        kl_co = log_q - log_p
    else:  # autonomous generator (zero input: only its input bias)
        gi = P["generator.bias_ih"].unsqueeze(1).expand(M, B, -1)
        w_t, bias = P["generator.weight_hh"].transpose(1, 2), P["generator.bias_hh"].unsqueeze(1)
        kept = []
        for t in range(T):
            g = torch.clamp(gru_gates(gi, torch.baddbmm(bias, g, w_t), g), -clip, clip)
            kept.append(g * masks[:, t + 1] if masks is not None else g)
        factors = _linear(torch.stack(kept, dim=2), W_f)
        kl_co = g.new_zeros(M, B)
    params = _linear(factors, P["readout.weight"], P["readout.bias"]).reshape(M, B, T, C, n_params)
    return params, kl_ic, kl_co


# ------------------------------------------------------------------------------- stacked population
class StackedPopulation:
    """The parameters (each (M, *shape), with gradients), Adam state and per-member
    hyperparameters of M members of one architecture.

    Built from :class:`.pbt.member.Member` objects (:meth:`from_members`) and written back to them
    (:meth:`store`); a member's Adam state is torch's (``exp_avg``, ``exp_avg_sq``, ``step`` per
    parameter; a parameter without state has not been stepped yet). ``steps`` (M,) counts each
    member's training steps (the ramp's clock), ``active`` (M,) marks members still training in
    this generation (False after a NaN/inf loss)."""

    def __init__(self, template: LFADS, M: int, betas: tuple[float, float], eps: float):
        self.template = template
        self.M, self.betas, self.eps = M, betas, eps
        self.names = [n for n, _ in template.named_parameters()]
        self.params = {n: p.detach().new_zeros(M, *p.shape).requires_grad_(True)
                       for n, p in template.named_parameters()}
        self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        dev = template.readout.weight.device
        self.step = {n: torch.zeros(M, dtype=torch.float64, device=dev) for n in self.names}
        self.hp: dict[str, list[float]] = {}
        self.steps = [0] * M
        self.active = [True] * M

    @classmethod
    def from_members(cls, members: list[Member]) -> "StackedPopulation":
        group = members[0].opt.param_groups[0]
        pop = cls(members[0].model, len(members), tuple(group["betas"]), group["eps"])
        for k, m in enumerate(members):
            pop.load(k, m)
        return pop

    @torch.no_grad()
    def load(self, k: int, member: Member) -> None:
        """Member ``member``'s weights, Adam state, hyperparameters and step count into slot k."""
        for n, p in member.model.named_parameters():
            self.params[n][k].copy_(p)
            state = member.opt.state.get(p, {})
            if state:
                self.exp_avg[n][k].copy_(state["exp_avg"])
                self.exp_avg_sq[n][k].copy_(state["exp_avg_sq"])
                self.step[n][k] = float(state["step"])
            else:
                self.exp_avg[n][k].zero_()
                self.exp_avg_sq[n][k].zero_()
                self.step[n][k] = 0.0
        for key, value in member.hp.items():
            self.hp.setdefault(key, [math.nan] * self.M)[k] = float(value)
        self.steps[k], self.active[k] = member.steps, True

    @torch.no_grad()
    def store(self, k: int, member: Member) -> None:
        """Slot k's weights, Adam state and step count into ``member`` (its hyperparameters are
        not changed: they are the member's own between generations)."""
        for n, p in member.model.named_parameters():
            p.copy_(self.params[n][k])
            step = float(self.step[n][k])
            if step == 0:
                member.opt.state.pop(p, None)
                continue
            state = member.opt.state[p]
            if not state:
                # torch.optim.Adam's own step tensor: float64 only under a float64 default dtype
                state["step"] = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                             else torch.float32)
                state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            state["step"].fill_(step)
            state["exp_avg"].copy_(self.exp_avg[n][k])
            state["exp_avg_sq"].copy_(self.exp_avg_sq[n][k])
        member.steps = self.steps[k]

    @torch.no_grad()
    def copy(self, src: int, dst: int, hp: dict[str, float] | None = None) -> None:
        """Exploit inside the stacked tensors: slot ``dst`` gets slot ``src``'s weights, Adam state
        (moments and step) and step count, and the hyperparameters ``hp`` (explored from the
        source's; the source's own when None)."""
        for n in self.names:
            for t in (self.params[n], self.exp_avg[n], self.exp_avg_sq[n], self.step[n]):
                t[dst] = t[src]
        for key in self.hp:
            self.hp[key][dst] = float(hp[key]) if hp is not None else self.hp[key][src]
        self.steps[dst], self.active[dst] = self.steps[src], self.active[src]

    def vector(self, values, like: torch.Tensor | None = None) -> torch.Tensor:
        """A per-member list of floats as an (M,) tensor of the parameters' dtype and device."""
        like = like if like is not None else self.params[self.names[0]]
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def forward(self, x: torch.Tensor, draws: dict | None, sample: bool):
        """:func:`stacked_forward` with these parameters."""
        tpl = self.template
        return stacked_forward(self.params, tpl.cfg, tpl.observation.n_params, x, draws, sample)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, batch_size: int = 256) -> list[float]:
        """Every member's mean NLL per element on x (N, L + T, C) with posterior means and no
        dropout (the validation metric of :func:`.training.evaluate_nll`, in the same batches)."""
        L, obs = self.template.cfg.lead_in_bins, self.template.observation
        total = torch.zeros(self.M, dtype=torch.float64, device=x.device)
        count = 0.0
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            params, _, _ = self.forward(xb.expand(self.M, *xb.shape), None, sample=False)
            total += obs.nll(params, xb[:, L:]).sum(dim=(1, 2, 3)).double()
            count += xb[:, L:].numel()
        return [float(v) / max(count, 1.0) for v in total.cpu()]


class _StepDraws:
    """One step's draws of M members, gathered per kind then stacked along the member dimension
    (:func:`_draw`). An inactive member's slot gets the first windows, no augmentation and no
    dropout."""

    KINDS = ("idx", "s_target", "s_enc", "keep", "loss_mask", "x", "ci", "ic", "ic_noise", "gen", "co_noise")

    def __init__(self, cfg, B: int, like: torch.Tensor):
        TT, C = like.shape[1], like.shape[2]
        self.T, self.B, self.C, self.TT, self.like = TT - cfg.lead_in_bins, B, C, TT, like
        self.E2, self.I, self.G, self.U, self.Ec2 = (2 * cfg.ic_enc_dim, cfg.ic_dim, cfg.gen_dim, cfg.co_dim,
                                                     2 * cfg.ci_enc_dim)
        self.co = self.U > 0
        self.lists = {k: [] for k in self.KINDS}
        self.ones: dict = {}

    def one(self, shape):
        if shape not in self.ones:
            self.ones[shape] = torch.ones(shape, dtype=self.like.dtype, device=self.like.device)
        return self.ones[shape]

    def noise(self, shape, gen):
        return torch.randn(shape, generator=gen, device=self.like.device, dtype=self.like.dtype)

    def idle(self) -> None:
        """The slot of an inactive member: draws nothing."""
        B, T, TT, C, dev, dt = self.B, self.T, self.TT, self.C, self.like.device, self.like.dtype
        a = self.lists
        zero_shift = torch.zeros(B, 1, C, dtype=torch.long, device=dev)
        a["idx"].append(torch.arange(B, device=dev))
        a["s_target"].append(zero_shift)
        a["s_enc"].append(zero_shift)
        a["keep"].append(self.one((B, TT, C)))
        a["loss_mask"].append(self.one((B, TT, C)))
        for kind, shape in (("x", (B, TT, C)), ("ci", (B, T, self.Ec2)), ("ic", (B, self.E2)),
                            ("gen", (T + 1, B, self.G))):
            a[kind].append(self.one(shape))
        a["ic_noise"].append(torch.zeros(B, self.I, dtype=dt, device=dev))
        a["co_noise"].append(torch.zeros(T, B, self.U, dtype=dt, device=dev))

    def member(self, batch: torch.Tensor, shift: TemporalShift, cd_rate: float, dropout: float,
               aug_gen: torch.Generator, gen: torch.Generator) -> None:
        """An active member's draws, in the order of :func:`.loop.train_steps`: the shifts and the
        coordinated-dropout mask from ``aug_gen``, then the model's dropout masks and posterior
        noise from ``gen``."""
        B, T, TT, C, like, a = self.B, self.T, self.TT, self.C, self.like, self.lists
        a["idx"].append(batch)
        if shift.active:
            a["s_target"].append(shift.draw(B, C, like.device, aug_gen))
            a["s_enc"].append(shift.draw(B, C, like.device, aug_gen))
        if cd_rate > 0:
            kp = (torch.rand((B, TT, C), generator=aug_gen, device=like.device, dtype=like.dtype) >= cd_rate
                  ).to(like.dtype)
            a["keep"].append(kp)
            a["loss_mask"].append(1.0 - kp)
        else:
            a["keep"].append(self.one((B, TT, C)))
            a["loss_mask"].append(self.one((B, TT, C)))
        p = dropout

        def mask(shape):
            return dropout_mask(shape, p, gen, like) if p > 0 else self.one(shape)
        a["x"].append(mask((B, TT, C)))
        if self.co:
            a["ci"].append(mask((B, T, self.Ec2)))
        a["ic"].append(mask((B, self.E2)))
        a["ic_noise"].append(self.noise((B, self.I), gen))
        a["gen"].append(mask((T + 1, B, self.G)))
        if self.co:
            a["co_noise"].append(self.noise((T, B, self.U), gen))

    def stacked(self, shift_active: bool, any_dropout: bool) -> dict:
        a, co = self.lists, self.co
        return {
            "idx": torch.stack(a["idx"]),
            "shift": (torch.stack(a["s_target"]), torch.stack(a["s_enc"])) if shift_active else None,
            "keep": torch.stack(a["keep"]), "loss_mask": torch.stack(a["loss_mask"]),
            "x": torch.stack(a["x"]) if any_dropout else None,
            "ci": torch.stack(a["ci"]) if any_dropout and co else None,
            "ic": torch.stack(a["ic"]) if any_dropout else None,
            "ic_noise": torch.stack(a["ic_noise"]),
            "gen": torch.stack(a["gen"]) if any_dropout else None,  # (M, T + 1, B, G)
            "co_noise": torch.stack(a["co_noise"]) if co else None,  # (M, T, B, U)
        }


def _draw(pop: StackedPopulation, samplers: list[WindowSampler], train_x: torch.Tensor, shift: TemporalShift,
          streams: list[Streams] | None = None) -> dict:
    """One step's random draws of every active member, from its own ``streams`` (augmentations from
    ``augment``, dropout masks and posterior noise from ``noise``; without streams every draw from
    its sampler's generator), per generator in the order of :func:`.loop.train_steps` (module
    docstring), stacked along the member dimension. Inactive members draw nothing (their slots get the first windows, no augmentation
    and no dropout).

    Raises
    ------
    RuntimeError
        The active members' batches differ in size (their samplers are not in step: they must all
        start the generation together, as :class:`StackedExecutor` makes them).
    """
    M, like = pop.M, train_x
    # every member's batch is the first draw of its step (the generators are independent, so drawing
    # all batches first keeps each member's own order)
    batches = {k: samplers[k].next().to(like.device) for k in range(M) if pop.active[k]}
    sizes = {int(b.numel()) for b in batches.values()}
    if len(sizes) != 1:
        raise RuntimeError(f"stacked members' batches differ in size ({sorted(sizes)}): their window samplers are "
                           "not in step (each must start the generation with a new WindowSampler)")
    draws = _StepDraws(pop.template.cfg, sizes.pop(), like)
    for k in range(M):
        if not pop.active[k]:
            draws.idle()
            continue
        aug_gen, gen = ((samplers[k].generator,) * 2 if streams is None
                        else (streams[k].augment, streams[k].noise))  # augmentations; the model's draws
        draws.member(batches[k], shift, pop.hp["cd_rate"][k], pop.hp["dropout"][k], aug_gen, gen)
    return draws.stacked(shift.active, any(pop.hp["dropout"][k] > 0 for k in range(M) if pop.active[k]))


def stacked_steps(pop: StackedPopulation, train_x: torch.Tensor, cfg: TrainConfig, aug: AugmentConfig, n_steps: int,
                  samplers: list[WindowSampler], ramp_steps: int, streams: list[Streams] | None = None
                  ) -> list[dict[str, float] | None]:
    """``n_steps`` training steps of every active member of ``pop`` at once: the same draws and the
    same math as :func:`.training.train_steps` with the member's generator, run member by member.

    Parameters
    ----------
    pop : the members (weights, Adam state, hyperparameters ``pop.hp``, step counts); trained in
        place, ``pop.steps`` advanced for every step applied.
    train_x : (N, L + T, C) training windows.
    cfg, aug : training and augmentation settings; ``cfg``'s lr, dropout, cd_rate and KL/L2
        weights are replaced by each member's (``pop.hp``); gradient clipping
        (``cfg.max_grad_norm``) acts on each member's own global norm; each member has its own
        Adam learning rate and state.
    samplers : one :class:`.training.WindowSampler` per member, each drawing from the member's
        own batch generator; all started together.
    streams : per member, its :class:`~nwb_autolfads.train.seeds.Streams` (``batches`` is its
        sampler's generator); None: every draw of a member from its sampler's generator.
    ramp_steps : the KL/L2 weights ramp from 0 to 1 over this many steps of each member's count.

    Returns
    -------
    Per member, the sums of the reconstruction NLL, KL and L2 terms over its steps (keys nll,
    kl_ic, kl_co, l2) and ``n`` (steps done), or None for a member whose loss became NaN/inf (it is
    then inactive, with the weights and Adam state from before that step, which its count does
    not include) or that was inactive already.
    """
    M = pop.M
    L = pop.template.cfg.lead_in_bins
    obs = pop.template.observation
    shift = TemporalShift(aug.shift_std, aug.shift_max)
    like = pop.params[pop.names[0]]
    sums = [dict.fromkeys(_STATS, 0.0) | {"n": 0} if pop.active[k] else None for k in range(M)]
    hp = {key: pop.vector(pop.hp[key]) for key in ("kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale")}
    cd_den = pop.vector([1.0 - r if r > 0 else 1.0 for r in pop.hp["cd_rate"]]).view(M, 1, 1, 1)
    lr = torch.tensor(pop.hp["lr"], dtype=torch.float64, device=like.device)
    recurrent = {"gen": "generator.weight_hh", "con": "controller.weight_hh"}
    recurrent = {k: n for k, n in recurrent.items() if n in pop.params}
    for _ in range(n_steps):
        if not any(pop.active):
            break
        d = _draw(pop, samplers, train_x, shift, streams)
        xb = train_x[d["idx"]]  # (M, B, L + T, C)
        if d["shift"] is not None:
            T_all = xb.shape[2]
            target = torch.gather(xb, 2, TemporalShift.sources(d["shift"][0], T_all))
            enc_in = torch.gather(xb, 2, TemporalShift.sources(d["shift"][1], T_all))
        else:
            target, enc_in = xb, xb
        enc_in = enc_in * d["keep"] / cd_den
        mask = d["loss_mask"]
        params, kl_ic, kl_co = pop.forward(enc_in, d, sample=True)
        target, mask = target[:, :, L:], mask[:, :, L:]
        nll = obs.nll(params, target)  # (M, B, T, C)
        recon = (nll * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp_min(1.0)
        kl_ic, kl_co = kl_ic.mean(1), kl_co.mean(1)
        l2 = torch.zeros((), dtype=like.dtype, device=like.device)
        for key, name in recurrent.items():
            w = pop.params[name]
            l2 = l2 + hp[f"l2_{key}_scale"] * 0.5 * w.pow(2).sum(dim=(1, 2)) / w[0].numel()
        ramp = pop.vector([ramp_weight(s, ramp_steps) for s in pop.steps])
        loss = recon + ramp * (hp["kl_ic_scale"] * kl_ic + hp["kl_co_scale"] * kl_co + l2)  # (M,)
        finite = torch.isfinite(loss).tolist()
        for k in range(M):
            if pop.active[k] and not finite[k]:
                pop.active[k], sums[k] = False, None
        if not any(pop.active):
            break
        live = pop.vector(pop.active).bool()
        for p in pop.params.values():
            p.grad = None
        (cfg.loss_scale * torch.where(live, loss, torch.zeros_like(loss))).sum().backward()
        _clip_and_step(pop, cfg.max_grad_norm, lr, live)
        values = torch.stack([recon, kl_ic, kl_co, l2.expand(M)], dim=1).tolist()
        for k in range(M):
            if pop.active[k]:
                pop.steps[k] += 1
                for key, v in zip(_STATS, values[k]):
                    sums[k][key] += v
                sums[k]["n"] += 1
    return sums


@torch.no_grad()
def _clip_and_step(pop: StackedPopulation, max_norm: float, lr: torch.Tensor, live: torch.Tensor) -> None:
    """Per-member gradient clipping (each member's global norm, as
    ``torch.nn.utils.clip_grad_norm_``) and per-member Adam (as ``torch.optim.Adam``'s
    single-tensor update) for the members in ``live`` (M,); the others are left as they are."""
    M = pop.M
    names = [n for n in pop.names if pop.params[n].grad is not None]
    grads = [pop.params[n].grad for n in names]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(M, -1), 2, dim=1) for g in grads], dim=1)  # (M, P)
    total = torch.linalg.vector_norm(norms, 2, dim=1)  # (M,)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    beta1, beta2 = pop.betas
    all_live = bool(live.all())
    livef = live.to(torch.float64)
    for n, g in zip(names, grads):
        shape = (M,) + (1,) * (g.dim() - 1)
        g.mul_(coef.view(shape))
        p, ea, eas = pop.params[n], pop.exp_avg[n], pop.exp_avg_sq[n]
        if not all_live:
            old = (p.detach().clone(), ea.clone(), eas.clone())
        step = pop.step[n] + livef
        ea.lerp_(g, 1 - beta1)
        eas.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        safe = step.clamp_min(1.0)  # members not stepped keep step 0 (no bias correction needed)
        step_size = (lr / (1 - beta1**safe)).to(p.dtype).view(shape)
        bc2_sqrt = (1 - beta2**safe).sqrt().to(p.dtype).view(shape)
        denom = (eas.sqrt() / bc2_sqrt).add_(pop.eps)
        p.detach().addcdiv_(ea * -step_size, denom)
        if not all_live:
            keep = live.view(shape)
            p.detach().copy_(torch.where(keep, p.detach(), old[0]))
            ea.copy_(torch.where(keep, ea, old[1]))
            eas.copy_(torch.where(keep, eas, old[2]))
        pop.step[n] = step


# ------------------------------------------------------------------------------- executor
class StackedExecutor:
    """Trains every member of a population for one generation as one stacked program
    (``pbt.execution: stacked``); the drop-in for :class:`.pbt.embedded._Executor`, with the same results.

    ``generation(members, n_steps, ...)`` trains ``n_steps`` steps (``pbt.generation_steps``) per
    member; a member is validated whenever its own step count reaches a multiple of
    ``train.valid_every`` and at the generation's end, on the fixed subset of at most
    ``train.valid_windows`` validation windows of ``data`` (:func:`.loop.validation_subset`), its
    smoothed NLL and history rows kept as :func:`.pbt.member.train_generation` keeps them; the KL/L2 ramp
    runs over ``train.ramp_steps`` steps of each member's own count.
    """

    def __init__(self, data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig):
        refuse_stacked_sessions("stacked", data.n_sessions)
        if data.train_mask is not None or data.valid_mask is not None:
            raise ValueError("StackedExecutor: the stacked program does not apply the data's masks: train masked "
                             "data with pbt.execution=processes or sequential")
        self.n_channels, self.model_cfg, self.observation = data.n_channels, model_cfg, data.observation
        self.train_cfg, self.aug, self.train_x = train_cfg, aug, data.train
        self.valid_x = data.validation_subset(train_cfg.valid_windows).valid

    def generation(self, members: list[Member], n_steps: int, generation: int, seed: int, first: int = 0) -> None:
        """Train ``members`` in place for one generation (weights, Adam state, ``steps``,
        ``smoothed`` metric and ``history``, as :func:`.pbt.member.train_generation` does one by one).
        ``seed``: the run's seed; member k of generation g draws from ``member_streams(seed, g, k)``,
        as with the other executors. ``first``: the population index of ``members[0]`` (a block
        of the population trained in a worker process: ``members[j]`` is member ``first + j``)."""
        with reusing_freed_memory():  # the stacked buffers exceed glibc's mmap threshold (see there)
            self._generation(members, n_steps, generation, seed, first)

    def _generation(self, members: list[Member], n_steps: int, generation: int, seed: int, first: int) -> None:
        cfg, every = self.train_cfg, self.train_cfg.valid_every
        pop = StackedPopulation.from_members(members)
        dev = self.train_x.device
        streams = [member_streams(seed, generation, first + k, dev) for k in range(len(members))]
        samplers = [WindowSampler(self.train_x.shape[0], cfg.batch_size, generator=s.batches) for s in streams]
        since = [dict.fromkeys(_STATS, 0.0) | {"n": 0} for _ in members]  # sums since each member's last check
        done = 0
        while done < n_steps and any(pop.active):
            # up to the next check of any member (members that diverged before may be out of step)
            n = min([every - pop.steps[k] % every for k in range(pop.M) if pop.active[k]] + [n_steps - done])
            was_active = list(pop.active)
            sums = stacked_steps(pop, self.train_x, cfg, self.aug, n, samplers, cfg.ramp_steps, streams)
            done += n
            due = [was_active[k] and (sums[k] is None or pop.steps[k] % every == 0 or done >= n_steps)
                   for k in range(pop.M)]
            valid = pop.evaluate(self.valid_x) if any(pop.active[k] and due[k] for k in range(pop.M)) else None
            for k, member in enumerate(members):
                if not due[k]:
                    if was_active[k]:
                        for key in _STATS + ("n",):
                            since[k][key] += sums[k][key]
                    continue
                member.steps = pop.steps[k]
                if sums[k] is None or not math.isfinite(valid[k]):  # diverged: stops, the tournament replaces it
                    member.smoothed, pop.active[k] = math.nan, False
                    continue
                total = {key: since[k][key] + sums[k][key] for key in _STATS + ("n",)}
                means = {key: total[key] / max(total["n"], 1) for key in _STATS}
                record_check(member, means, valid[k], cfg.smoothing, generation)
                since[k] = dict.fromkeys(_STATS, 0.0) | {"n": 0}
        for k, member in enumerate(members):
            pop.store(k, member)

    def close(self) -> None:
        """Nothing to release (no processes)."""


def time_stacked(model: LFADS, data: TrainingData, cfg: TrainConfig, aug: AugmentConfig,
                 hp: dict[str, float], members: int, n_steps: int = 2) -> tuple[float, float]:
    """Seconds per stacked training step of ``members`` members (one step of every member) and per
    stacked validation check (every member on the validation subset), measured with ``members``
    copies of ``model`` (not changed) with hyperparameters ``hp``: one warm-up step, then
    ``n_steps`` timed steps and one check. Every draw comes from throwaway generators: torch's
    global RNG is not used (the run's results do not depend on the measurement)."""
    member = Member(model, torch.optim.Adam(model.parameters(), lr=hp["lr"], eps=cfg.adam_eps), dict(hp))
    group = member.opt.param_groups[0]
    pop = StackedPopulation(model, members, tuple(group["betas"]), group["eps"])
    for k in range(members):
        pop.load(k, member)  # the weights and hp (dropout, cd_rate, ...) of every slot; Adam state zero
    train_x = data.train
    dev = train_x.device
    samplers = [WindowSampler(train_x.shape[0], cfg.batch_size, generator=torch.Generator(device=dev).manual_seed(k))
                for k in range(members)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    stacked_steps(pop, train_x, cfg, aug, 1, samplers, cfg.ramp_steps)  # warm-up (allocations, kernels)
    sync()
    t0 = time.perf_counter()
    stacked_steps(pop, train_x, cfg, aug, n_steps, samplers, cfg.ramp_steps)
    sync()
    per_step = (time.perf_counter() - t0) / n_steps
    subset = data.validation_subset(cfg.valid_windows).valid
    t0 = time.perf_counter()
    pop.evaluate(subset)
    sync()
    return per_step, time.perf_counter() - t0
