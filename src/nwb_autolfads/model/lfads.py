"""LFADS: a sequential variational autoencoder of population dynamics (docs/science.md, LFADS).

Read top to bottom:

    data x (B, T, C)
      -> IC encoder (bidirectional GRU)        -> q(g0) = N(ic_mean, ic_std^2)       (B, I)
      -> CI encoder (bidirectional GRU)        -> controller inputs ci               (B, T, 2E)
      -> for each bin t:
           controller GRU([ci_t, f_{t-1}])     -> q(u_t) = N(u_mean, u_std^2)        (B, U)
           generator GRU(u_t, g_{t-1})         -> g_t (cell state clipped)           (B, G)
           factors f_t = W_f g_t                                                     (B, F)
      -> readout f_t -> distribution parameters per channel                          (B, T, C, P)

Several sessions (recordings with their own channels, one shared dynamical model: "stitching",
docs/science.md, Multi-session models): each session s has a linear read-in (C, R) that maps its
channels (padded with zeros to C = the most channels of any session) to R shared inputs the
encoders read, and its own read-out (F, C * P) + bias (C * P) from the shared factors to its
channels. ``forward`` then takes ``session`` (B,), the session of each window.

Priors: g0 ~ N(0, ic_prior_var); u_t follows an AR(1) process with learnable time constant
and process variance. KL terms are returned per window; the training module weighs them.

The parameters live in ordinary ``nn.GRU`` / ``nn.GRUCell`` / ``nn.Linear`` modules; the
recurrences are computed by :mod:`nwb_autolfads.model.recurrence` (same equations, hand-written
backward passes) because that is much faster on a CPU.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as nnf
from torch import nn

from nwb_autolfads.config import ModelConfig
from nwb_autolfads.model.observations import ObservationModel
from nwb_autolfads.model.recurrence import controlled_generator, gru_gates, stacked_gru

__all__ = ["LFADS", "LFADSOutput", "AR1Prior", "dropout_mask"]


class LFADSOutput(NamedTuple):
    params: torch.Tensor  # (B, T, C, P) readout parameters of the observation model
    factors: torch.Tensor  # (B, T, F)
    inputs: torch.Tensor  # (B, T, U) inferred inputs (U = 0 without a controller)
    ic_mean: torch.Tensor  # (B, I)
    ic_std: torch.Tensor  # (B, I)
    kl_ic: torch.Tensor  # (B,) KL(q(g0) || p(g0)), summed over dimensions
    kl_co: torch.Tensor  # (B,) Monte-Carlo KL(q(u) || p(u)), summed over time and dimensions


class AR1Prior(nn.Module):
    """Autoregressive prior on the inferred inputs: u_0 ~ N(0, s2),
    u_t | u_{t-1} ~ N(phi u_{t-1}, s2 (1 - phi^2)), phi = exp(-1 / tau); tau and s2 learnable."""

    def __init__(self, dim: int, tau: float, var: float):
        super().__init__()
        self.log_tau = nn.Parameter(torch.full((dim,), math.log(tau)))
        self.log_var = nn.Parameter(torch.full((dim,), math.log(var)))

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:  # u (B, T, U) -> (B,)
        phi = torch.exp(-1.0 / self.log_tau.exp())  # (U,)
        var = self.log_var.exp()  # (U,)
        mean = torch.cat([torch.zeros_like(u[:, :1]), phi * u[:, :-1]], dim=1)  # (B, T, U)
        cond_var = torch.cat([var.expand_as(u[:, :1]), (var * (1 - phi**2)).expand_as(u[:, 1:])], dim=1)
        logp = -0.5 * (math.log(2 * math.pi) + cond_var.log() + (u - mean) ** 2 / cond_var)
        return logp.sum(dim=(1, 2))


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A dropout mask of ``shape`` (0, or 1 / (1 - p) with probability 1 - p), on ``like``'s device
    and dtype, drawn from ``generator`` (torch's global RNG when None). 0 < p < 1.

    One uniform draw per element, kept where it is >= p, in three operations on one tensor
    (about twice as fast as ``bernoulli_`` and a division on a CPU). The single model and the
    stacked population (:mod:`.stacked`) both draw their masks here, so a member's generator
    gives the same masks in both."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return u.ge_(p).mul_(1.0 / (1.0 - p))


def _check_sessions(n_channels: int, session_channels) -> tuple[int, ...] | None:
    """``session_channels`` as a tuple for a model of several sessions, None for one.

    Raises
    ------
    ValueError
        A count < 1 or > ``n_channels``, or none equal to it (the windows are padded to the most)."""
    if session_channels is None or len(session_channels) <= 1:
        return None
    counts = tuple(int(c) for c in session_channels)
    if min(counts) < 1 or max(counts) != n_channels:
        raise ValueError(f"LFADS: session channel counts {counts} do not fit {n_channels} channels (the windows of "
                         "every session are padded to the most channels of any session)")
    return counts


def _principal_axes(x: torch.Tensor, k: int) -> torch.Tensor:
    """The top ``k`` principal axes of centred data x (n, C) as columns (C, k), orthonormal,
    each with its largest entry positive (a fixed sign)."""
    if x.shape[0] < 2:
        return torch.eye(x.shape[1], k, dtype=x.dtype, device=x.device)
    _, _, vh = torch.linalg.svd(x.double(), full_matrices=False)  # vh (min(n, C), C)
    axes = vh[:k].T  # (C, k')
    if axes.shape[1] < k:  # fewer bins than axes
        axes = torch.cat([axes, axes.new_zeros(axes.shape[0], k - axes.shape[1])], dim=1)
    sign = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    return (axes * torch.where(sign == 0, torch.ones_like(sign), sign)).to(x.dtype)


def _gaussian_log_prob(x, mean, std):
    return -0.5 * (math.log(2 * math.pi) + 2 * std.log() + ((x - mean) / std) ** 2)


class LFADS(nn.Module):
    """The LFADS model (module docstring).

    Parameters
    ----------
    n_channels : int
        Channels C of the windows it reads (several sessions: the most channels of any session).
    cfg : ModelConfig
        The architecture, with ``factor_dim`` resolved.
    observation : ObservationModel
        What the read-out predicts per channel.
    session_channels : tuple of int, optional
        The channel count of each session, for a model of several sessions (each <= ``n_channels``,
        one of them equal); None or one session: the single-session model.

    Raises
    ------
    ValueError
        ``factor_dim`` is unresolved, or ``session_channels`` does not fit ``n_channels``.
    """

    def __init__(self, n_channels: int, cfg: ModelConfig, observation: ObservationModel,
                 session_channels: tuple[int, ...] | None = None):
        super().__init__()
        if cfg.factor_dim is None:
            raise ValueError("ModelConfig.factor_dim must be resolved (RunConfig.resolved) before building LFADS")
        self.cfg = cfg
        self.n_channels = n_channels
        self.observation = observation
        self.session_channels = _check_sessions(n_channels, session_channels)
        C, E, I, G, F = n_channels, cfg.ic_enc_dim, cfg.ic_dim, cfg.gen_dim, cfg.factor_dim
        if self.session_channels is not None:  # the encoders read the R shared inputs of the read-ins
            C = cfg.readin_for(self.session_channels)
        self.dropout = nn.Dropout(cfg.dropout)

        # Initial-condition encoder: whole window, both directions -> posterior over g0.
        self.ic_encoder = nn.GRU(C, E, batch_first=True, bidirectional=True)
        self.ic_posterior = nn.Linear(2 * E, 2 * I)  # -> (mean, log variance)
        self.ic_to_g0 = nn.Linear(I, G)

        # Controller: reads the data (through its own encoder) and the previous factors,
        # and emits the inferred inputs u_t that drive the generator.
        self.co_dim = cfg.co_dim
        if cfg.co_dim > 0:
            Ec, Cn, U = cfg.ci_enc_dim, cfg.con_dim, cfg.co_dim
            self.ci_encoder = nn.GRU(C, Ec, batch_first=True, bidirectional=True)
            self.controller = nn.GRUCell(2 * Ec + F, Cn)
            self.con_h0 = nn.Parameter(torch.zeros(Cn))
            self.co_posterior = nn.Linear(Cn, 2 * U)
            self.co_prior = AR1Prior(U, cfg.co_prior_tau, cfg.co_prior_var)
            gen_in = U
        else:
            gen_in = 1  # a constant zero input: the generator runs autonomously from g0
        self.generator = nn.GRUCell(gen_in, G)
        self.to_factors = nn.Linear(G, F, bias=False)
        if self.session_channels is None:
            self.readout = nn.Linear(F, C * observation.n_params)
        else:
            self._init_session_maps(C, F)

    def _init_session_maps(self, R: int, F: int) -> None:
        """The per-session read-ins (S, C, R) and read-outs (S, F, C * P) + biases (S, C * P) of a
        multi-session model, drawn as ``nn.Linear`` draws its weights (uniform within +-1 / sqrt(fan
        in)); the rows of a session's padded channels (read-in) and their read-out columns are zero.
        :meth:`init_from_data` replaces the read-ins and the biases with the data's."""
        S, C, P = len(self.session_channels), self.n_channels, self.observation.n_params
        mask = torch.zeros(S, C)
        for s, c in enumerate(self.session_channels):
            mask[s, :c] = 1.0
        self.register_buffer("channel_mask", mask, persistent=False)  # (S, C): 1 on each session's channels
        out_mask = mask.repeat_interleave(P, dim=1)  # (S, C * P), channel-major as the read-out's columns
        readin = torch.empty(S, C, R)
        for s, c in enumerate(self.session_channels):
            readin[s].uniform_(-1 / math.sqrt(c), 1 / math.sqrt(c))
        self.readin = nn.Parameter(readin * mask[..., None])  # (S, C, R)
        bound = 1 / math.sqrt(F)
        self.readout_weight = nn.Parameter(torch.empty(S, F, C * P).uniform_(-bound, bound) * out_mask[:, None])
        self.readout_bias = nn.Parameter(torch.empty(S, C * P).uniform_(-bound, bound) * out_mask)

    # ---------------------------------------------------------------------------------
    def init_readout_bias(self, data_mean: torch.Tensor) -> None:
        """Start with outputs at the data's mean per channel (data_mean: (C,)); several sessions:
        (S, C), each session's means (its padded channels' values are not used)."""
        with torch.no_grad():
            if self.session_channels is None:
                self.readout.bias.copy_(self.observation.init_bias(data_mean).reshape(-1))
                return
            # padded channels: a harmless finite start (their outputs never enter a loss)
            means = torch.where(self.channel_mask.bool(), data_mean, torch.ones_like(data_mean))
            self.readout_bias.copy_(self.observation.init_bias(means).reshape(len(self.session_channels), -1))

    def init_from_data(self, data) -> None:
        """Initialise the data-dependent weights from ``data``
        (:class:`~nwb_autolfads.train.training_data.TrainingData`, its training windows).

        One session: exactly ``init_readout_bias(data.train.mean((0, 1)))`` (outputs start at the
        data's mean per channel). Several sessions (docs/science.md, Multi-session models): each
        session's read-out bias from its own channel means. Its read-in keeps its random start
        (``model.readin_init: random``, the default), or (``pca``) starts from a PCA of its own
        training windows: the top R principal axes of its centred, binned data (all bins of all
        its windows, (bins, C_s)) as the read-in's columns, so the R shared inputs start as that
        session's R directions of largest variance (a session with fewer channels than R fills its
        first C_s columns, the others stay zero); the axes are orthonormal, so the inputs keep the
        data's scale. The PCA start is the published idea (sessions from the same dynamics start
        with inputs that carry the same dominant structure), but measured here it let the model
        fit noise: the trailing axes hand the encoders the noise directions separately, and the
        validation NLL rose after a few hundred steps, where a random start (signal and noise mixed
        in every input, as in the channels themselves) kept improving (benchmarks/README.md, Many
        sessions). The read-outs
        keep their small random start (:meth:`_init_session_maps`): the factors are not yet
        aligned with anything, so no data-derived read-out would be better than random, and the
        biases already put every session's outputs at its mean.

        Raises
        ------
        ValueError
            ``data`` does not fit the model (:meth:`TrainingData.check_model`).
        """
        data.check_model(self)
        if self.session_channels is None:
            self.init_readout_bias(data.train.mean((0, 1)))
            return
        R = self.readin.shape[-1]
        means = torch.ones(len(self.session_channels), self.n_channels, dtype=data.train.dtype,
                           device=data.train.device)
        with torch.no_grad():
            for s, c in enumerate(self.session_channels):
                x = data.train[data.train_session == s][..., :c].reshape(-1, c)  # (bins, C_s)
                means[s, :c] = x.mean(0)
                if self.cfg.readin_init != "pca":
                    continue  # the random start of _init_session_maps
                axes = _principal_axes(x - x.mean(0), min(R, c))  # (C_s, k)
                self.readin[s].zero_()
                self.readin[s, :c, :axes.shape[1]] = axes.to(self.readin.dtype)
        self.init_readout_bias(means.to(self.readout_bias.dtype))

    def read_in(self, x: torch.Tensor, session: torch.Tensor | None) -> torch.Tensor:
        """The encoders' input: x (B, L + T, C) itself for one session; for several, each window
        through its session's read-in -> (B, L + T, R). The read-in is multiplied by the channel
        mask, so a session's padded channels never reach the encoders and their read-in rows get
        no gradient (they stay zero).

        Raises
        ------
        ValueError
            A model of several sessions without ``session`` (B,), or a session out of range.
        """
        if self.session_channels is None:
            return x
        session = self._check_session(session, x.shape[0])
        w = (self.readin * self.channel_mask[..., None])[session]  # (B, C, R)
        return torch.bmm(x, w)

    def read_out(self, factors: torch.Tensor, session: torch.Tensor | None) -> torch.Tensor:
        """factors (B, T, F) -> read-out values (B, T, C * P): the shared read-out, or for several
        sessions each row's session's read-out (``session`` (B,), as checked by :meth:`read_in`)."""
        if self.session_channels is None:
            return self.readout(factors)
        return torch.baddbmm(self.readout_bias[session][:, None, :], factors, self.readout_weight[session])

    def _check_session(self, session: torch.Tensor | None, batch: int) -> torch.Tensor:
        S = len(self.session_channels)
        if session is None:
            raise ValueError(f"LFADS: this model stitches {S} sessions: pass session= (the session index of each "
                             "window, (B,) int64)")
        session = torch.as_tensor(session, device=self.readin.device).long().reshape(-1)
        if session.shape[0] != batch:
            raise ValueError(f"LFADS: session has {session.shape[0]} entries for {batch} windows")
        if session.numel() and (int(session.min()) < 0 or int(session.max()) >= S):
            raise ValueError(f"LFADS: session indices {int(session.min())}..{int(session.max())} outside 0..{S - 1} "
                             f"(the model has {S} sessions)")
        return session

    def recurrent_weights(self) -> dict[str, torch.Tensor]:
        """Weights that the L2 penalties act on."""
        out = {"gen": self.generator.weight_hh}
        if self.co_dim > 0:
            out["con"] = self.controller.weight_hh
        return out

    def _dropout(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``self.dropout(x)``; with a generator the mask is drawn from it (:func:`dropout_mask`)."""
        if generator is None:
            return self.dropout(x)
        p = self.dropout.p if self.training else 0.0
        return x * dropout_mask(x.shape, p, generator, x) if p > 0 else x

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both bidirectional encoders over x (B, L + T, C), L = ``lead_in_bins``: the IC
        encoder's final states over all L + T bins (B, 2E) and the CI encoder's states over the
        last T bins (B, T, 2Ec) (None without a controller). Encoder directions with the same
        size and length run together as one batched recurrence (:func:`stacked_gru`), with the
        exact equations and weights of the ``nn.GRU`` modules that hold the parameters.
        ``generator``: draws the dropout mask of the CI encoder states (global RNG when None)."""
        L = self.cfg.lead_in_bins
        inputs = {id(self.ic_encoder): x}
        encoders = [self.ic_encoder]
        if self.co_dim > 0:
            inputs[id(self.ci_encoder)] = x[:, L:]
            encoders.append(self.ci_encoder)
        directions = [(gru, rev) for gru in encoders for rev in (False, True)]
        final: dict[tuple[nn.GRU, bool], torch.Tensor] = {}  # (encoder, reverse) -> final state (B, H)
        ci_states: dict[bool, torch.Tensor] = {}  # reverse -> CI encoder states (T, B, Ec), processing order
        for key in sorted({(gru.hidden_size, inputs[id(gru)].shape[1]) for gru, _ in directions}):
            group = [(gru, rev) for gru, rev in directions
                     if (gru.hidden_size, inputs[id(gru)].shape[1]) == key]
            H, D = key[0], len(group)
            sfx = ["_reverse" if rev else "" for _, rev in group]
            # every direction's (small) input in its processing order, projected with one batched
            # matrix product: the large projections are never copied, flipped or re-stacked
            xs = [inputs[id(gru)].transpose(0, 1) for gru, _ in group]  # (T, B, C)
            xin = torch.stack([xt.flip(0) if rev else xt for xt, (_, rev) in zip(xs, group)])  # (D, T, B, C)
            Tg, B, C = xin.shape[1:]
            w_ih = torch.stack([getattr(gru, "weight_ih_l0" + s) for (gru, _), s in zip(group, sfx)])  # (D, 3H, C)
            b_ih = torch.stack([getattr(gru, "bias_ih_l0" + s) for (gru, _), s in zip(group, sfx)])
            gi = torch.baddbmm(b_ih.unsqueeze(1), xin.reshape(D, Tg * B, C), w_ih.transpose(1, 2)).view(D, Tg, B, 3 * H)
            w_hh = torch.stack([getattr(gru, "weight_hh_l0" + s) for (gru, _), s in zip(group, sfx)])  # (D, 3H, H)
            b_hh = torch.stack([getattr(gru, "bias_hh_l0" + s) for (gru, _), s in zip(group, sfx)])
            # the CI directions come last in a group; every state is kept only for them
            first_ci = next((d for d, (gru, _) in enumerate(group) if gru is not self.ic_encoder), D)
            hs, last = stacked_gru(gi, w_hh, b_hh, keep=slice(first_ci, D), last=True)  # (D', Tg, B, H), (D, B, H)
            final.update(zip(group, last.unbind(0)))
            ci_states.update((rev, h) for (_, rev), h in zip(group[first_ci:], hs.unbind(0)))
        # final state of each direction (the backward direction's last processed bin is bin 0)
        ic_enc = torch.cat([final[(self.ic_encoder, False)], final[(self.ic_encoder, True)]], dim=-1)  # (B, 2E)
        if self.co_dim == 0:
            return ic_enc, None
        return ic_enc, self._lag_time_major(ci_states[False], ci_states[True], generator)

    def _lag_time_major(self, fwd: torch.Tensor, bwd: torch.Tensor, generator: torch.Generator | None
                        ) -> torch.Tensor:
        """:meth:`_lag` (with its dropout) of the CI encoder states in processing order, fwd and
        bwd (T, B, Ec) (bwd time-reversed), built time-major: returns the (B, T, 2Ec) transposed
        view of a contiguous (T, B, 2Ec) tensor (what the controller reads bin by bin). The
        dropout mask is drawn as (B, T, 2Ec), as :meth:`_lag` draws it."""
        T = fwd.shape[0]
        lag = min(self.cfg.ci_lag, T)
        bwd = bwd[: T - lag].flip(0)  # original time order, bins lag ... T - 1
        if lag > 0:
            zeros = fwd.new_zeros(lag, *fwd.shape[1:])
            fwd = torch.cat([zeros, fwd[: T - lag]])
            bwd = torch.cat([bwd, zeros])
        ci = torch.cat([fwd, bwd], dim=-1)  # (T, B, 2Ec)
        p = self.dropout.p if self.training else 0.0
        if p > 0:
            mask = dropout_mask((ci.shape[1], T, ci.shape[2]), p, generator, ci)  # (B, T, 2Ec)
            ci = ci * mask.transpose(0, 1)
        return ci.transpose(0, 1)

    def _lag(self, fwd: torch.Tensor, bwd: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Lag the CI encoder states by ``ci_lag`` bins: at bin t the forward half has read bins
        < t - lag + 1 and the backward half bins > t + lag - 1, so with lag >= 1 the controller
        input at t never contains x_t. fwd, bwd (B, T, Ec) -> (B, T, 2Ec)."""
        T = fwd.shape[1]
        lag = min(self.cfg.ci_lag, T)
        if lag > 0:
            fwd = torch.cat([torch.zeros_like(fwd[:, :lag]), fwd[:, : T - lag]], dim=1)
            bwd = torch.cat([bwd[:, lag:], torch.zeros_like(bwd[:, :lag])], dim=1)
        return self._dropout(torch.cat([fwd, bwd], dim=-1), generator)

    def controller_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The lagged CI encoder states for x (B, T, C) -> (B, T, 2Ec) (see :meth:`_lag`)."""
        return self.encode(x)[1]

    # ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sample: bool = True, n_samples: int = 1,
                generator: torch.Generator | None = None, session: torch.Tensor | None = None) -> LFADSOutput:
        """x (B, L + T, C) -> outputs over the last T bins (L = ``lead_in_bins``, seen only by the IC
        encoder). ``sample``: draw g0 and u from their posteriors (else use the
        means). ``n_samples`` > 1 draws that many posterior samples per window with the encoders
        run once: outputs then have B * n_samples rows, the samples of window b in rows
        b * n_samples ... (b + 1) * n_samples - 1. ``generator``: every random draw of the pass
        (dropout masks, posterior noise) comes from it, in a fixed order (input dropout, CI
        encoder dropout, IC encoder dropout, g0 noise, generator dropout, inferred-input noise);
        None draws from torch's global RNG. ``session`` (B,) int64: the session of each window,
        required by a model of several sessions (x padded to C channels; :meth:`read_in`)."""
        cfg = self.cfg
        B, T, C = x.shape
        T -= cfg.lead_in_bins  # the outputs cover the bins after the lead-in
        clip = cfg.cell_clip
        if self.session_channels is not None:
            session = self._check_session(session, B)
        x = self.read_in(self._dropout(x, generator), session)  # (B, L + T, C), or (B, L + T, R)

        # ---- encoders: q(g0 | x) and the controller inputs, lagged so the controller never
        #      sees the bin it explains
        ic_enc, ci = self.encode(x, generator)  # (B, 2E), (B, T, 2Ec) or None
        ic_mean, ic_logvar = self.ic_posterior(self._dropout(ic_enc, generator)).chunk(2, dim=-1)  # (B, I) each
        ic_std = torch.sqrt(ic_logvar.exp() + cfg.ic_post_var_min)
        if n_samples > 1:  # (B, ...) -> (B * S, ...)
            ic_mean, ic_std = ic_mean.repeat_interleave(n_samples, 0), ic_std.repeat_interleave(n_samples, 0)
            ci = ci.repeat_interleave(n_samples, 0) if ci is not None else None

        # ---- initial condition
        if sample:
            eps = torch.randn_like(ic_std) if generator is None else torch.randn(
                ic_std.shape, generator=generator, device=ic_std.device, dtype=ic_std.dtype)
            ic = ic_mean + ic_std * eps
        else:
            ic = ic_mean
        prior_var = cfg.ic_prior_var
        kl_ic = 0.5 * (math.log(prior_var) - 2 * ic_std.log() + (ic_std**2 + ic_mean**2) / prior_var - 1).sum(-1)
        g = torch.clamp(self.ic_to_g0(ic), -clip, clip)  # (B', G)

        # ---- unroll controller + generator over time (see _unroll for the fused form)
        factors_t, u_all, u_mean, u_std = self._unroll(ci, g, T, sample, generator)  # (B', T, F), (B', T, U) x 3
        if self.co_dim > 0:
            log_q = _gaussian_log_prob(u_all, u_mean, u_std).sum(dim=(1, 2))
            kl_co = log_q - self.co_prior.log_prob(u_all)
        else:
            kl_co = g.new_zeros(g.shape[0])

        rows = session.repeat_interleave(n_samples) if session is not None and n_samples > 1 else session  # (B',)
        params = self.read_out(factors_t, rows).reshape(g.shape[0], T, C, self.observation.n_params)
        return LFADSOutput(params, factors_t, u_all, ic_mean, ic_std, kl_ic, kl_co)

    def _unroll(self, ci: torch.Tensor | None, g: torch.Tensor, T: int, sample: bool,
                generator: torch.Generator | None = None):
        """Controller + generator over T bins. Per bin t:

            c_t = clip(GRU_con([ci_t, f_{t-1}], c_{t-1}));  u_t ~ N(u_mean_t, u_std_t^2) from c_t
            g_t = clip(GRU_gen(u_t, g_{t-1}));              f_t = W_f dropout(g_t)

        with f_{-1} = W_f dropout(g0). For speed the controller's input projection of ci is done
        for all bins in one matmul, the factor readout that feeds the controller is folded into
        one weight (W_ih,f @ W_f), dropout masks are drawn at once, the recurrence runs in
        :mod:`nwb_autolfads.model.recurrence` (hand-written backward), and the factors of all bins come
        from one matmul afterwards. ci (B, T, 2Ec) or None without a controller; g = g0 (B, G).
        Returns factors (B, T, F) and u, u_mean, u_std (B, T, U).
        """
        cfg = self.cfg
        B, G, clip = g.shape[0], cfg.gen_dim, cfg.cell_clip
        gen = self.generator
        p = self.dropout.p if self.training else 0.0
        # one dropout mask per bin and one for g0, drawn at once
        masks = dropout_mask((T + 1, B, G), p, generator, g) if p > 0 else None

        if self.co_dim > 0:
            con = self.controller
            Ec2 = 2 * cfg.ci_enc_dim
            ci_gates = nnf.linear(ci.transpose(0, 1), con.weight_ih[:, :Ec2], con.bias_ih)  # (T, B, 3Cn)
            w_gc = con.weight_ih[:, Ec2:] @ self.to_factors.weight  # (3Cn, G): dropout(g) -> controller gates
            noise = torch.randn(T, B, self.co_dim, generator=generator, device=g.device, dtype=g.dtype) if sample else None
            kept, u, u_mean, u_std = controlled_generator(
                ci_gates, g, self.con_h0.expand(B, -1), w_gc, con.weight_hh, con.bias_hh, self.co_posterior.weight,
                self.co_posterior.bias, gen.weight_ih, gen.bias_ih, gen.weight_hh, gen.bias_hh, masks, noise,
                clip)  # (T, B, G), (T, B, U) x 3
            factors = nnf.linear(kept.transpose(0, 1), self.to_factors.weight)  # (B, T, F)
            return factors, u.transpose(0, 1), u_mean.transpose(0, 1), u_std.transpose(0, 1)

        # no controller: the generator runs autonomously from g0 (zero input: only its bias)
        gi = gen.bias_ih.expand(B, -1)
        kept = []
        for t in range(T):
            gh = torch.addmm(gen.bias_hh, g, gen.weight_hh.t())
            g = torch.clamp(gru_gates(gi, gh, g), -clip, clip)
            kept.append(g * masks[t + 1] if masks is not None else g)
        factors = nnf.linear(torch.stack(kept, dim=1), self.to_factors.weight)  # (B, T, F)
        empty = g.new_zeros(B, T, 0)
        return factors, empty, empty, empty
