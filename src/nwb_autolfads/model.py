"""LFADS: a sequential variational autoencoder of population dynamics (science.md section 4).

Read top to bottom:

    data x (B, T, C)
      -> IC encoder (bidirectional GRU)        -> q(g0) = N(ic_mean, ic_std^2)       (B, I)
      -> CI encoder (bidirectional GRU)        -> controller inputs ci               (B, T, 2E)
      -> for each bin t:
           controller GRU([ci_t, f_{t-1}])     -> q(u_t) = N(u_mean, u_std^2)        (B, U)
           generator GRU(u_t, g_{t-1})         -> g_t (cell state clipped)           (B, G)
           factors f_t = W_f g_t                                                     (B, F)
      -> readout f_t -> distribution parameters per channel                          (B, T, C, P)

Priors: g0 ~ N(0, ic_prior_var); u_t follows an AR(1) process with learnable time constant
and process variance. KL terms are returned per window; the training module weighs them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as nnf
from torch import nn

from .config import ModelConfig
from .observations import ObservationModel

__all__ = ["LFADS", "LFADSOutput", "AR1Prior"]


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


def _gaussian_log_prob(x, mean, std):
    return -0.5 * (math.log(2 * math.pi) + 2 * std.log() + ((x - mean) / std) ** 2)


class LFADS(nn.Module):
    def __init__(self, n_channels: int, cfg: ModelConfig, observation: ObservationModel):
        super().__init__()
        if cfg.factor_dim is None:
            raise ValueError("ModelConfig.factor_dim must be resolved (RunConfig.resolved) before building LFADS")
        self.cfg = cfg
        self.n_channels = n_channels
        self.observation = observation
        C, E, I, G, F = n_channels, cfg.ic_enc_dim, cfg.ic_dim, cfg.gen_dim, cfg.factor_dim
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
        self.readout = nn.Linear(F, C * observation.n_params)

    # ---------------------------------------------------------------------------------
    def init_readout_bias(self, data_mean: torch.Tensor) -> None:
        """Start with outputs at the data's mean per channel (data_mean: (C,))."""
        with torch.no_grad():
            self.readout.bias.copy_(self.observation.init_bias(data_mean).reshape(-1))

    def recurrent_weights(self) -> dict[str, torch.Tensor]:
        """Weights that the L2 penalties act on."""
        out = {"gen": self.generator.weight_hh}
        if self.co_dim > 0:
            out["con"] = self.controller.weight_hh
        return out

    def controller_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """CI encoder states, lagged by ``ci_lag`` bins: at bin t the forward half has read
        bins < t - lag + 1 and the backward half bins > t + lag - 1, so with lag >= 1 the
        controller input at t never contains x_t. (B, T, C) -> (B, T, 2Ec)"""
        T = x.shape[1]
        ci, _ = self.ci_encoder(x)  # (B, T, 2Ec)
        Ec = ci.shape[-1] // 2
        fwd, bwd = ci[..., :Ec], ci[..., Ec:]
        lag = min(self.cfg.ci_lag, T)
        if lag > 0:
            fwd = torch.cat([torch.zeros_like(fwd[:, :lag]), fwd[:, : T - lag]], dim=1)
            bwd = torch.cat([bwd[:, lag:], torch.zeros_like(bwd[:, :lag])], dim=1)
        return self.dropout(torch.cat([fwd, bwd], dim=-1))

    # ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sample: bool = True, n_samples: int = 1) -> LFADSOutput:
        """x (B, T, C) -> outputs. ``sample``: draw g0 and u from their posteriors (else use the
        means). ``n_samples`` > 1 draws that many posterior samples per window with the encoders
        run once: outputs then have B * n_samples rows, the samples of window b in rows
        b * n_samples ... (b + 1) * n_samples - 1."""
        cfg = self.cfg
        B, T, C = x.shape
        clip = cfg.cell_clip
        x = self.dropout(x)

        # ---- encoders: q(g0 | x) and the controller inputs, lagged so the controller never
        #      sees the bin it explains
        _, h_n = self.ic_encoder(x)  # h_n (2, B, E)
        ic_enc = self.dropout(torch.cat([h_n[0], h_n[1]], dim=-1))  # (B, 2E)
        ic_mean, ic_logvar = self.ic_posterior(ic_enc).chunk(2, dim=-1)  # (B, I) each
        ic_std = torch.sqrt(ic_logvar.exp() + cfg.ic_post_var_min)
        ci = self.controller_inputs(x) if self.co_dim > 0 else None  # (B, T, 2Ec)
        if n_samples > 1:  # (B, ...) -> (B * S, ...)
            ic_mean, ic_std = ic_mean.repeat_interleave(n_samples, 0), ic_std.repeat_interleave(n_samples, 0)
            ci = ci.repeat_interleave(n_samples, 0) if ci is not None else None

        # ---- initial condition
        ic = ic_mean + ic_std * torch.randn_like(ic_std) if sample else ic_mean
        prior_var = cfg.ic_prior_var
        kl_ic = 0.5 * (math.log(prior_var) - 2 * ic_std.log() + (ic_std**2 + ic_mean**2) / prior_var - 1).sum(-1)
        g = torch.clamp(self.ic_to_g0(ic), -clip, clip)  # (B', G)

        # ---- unroll controller + generator over time (see _unroll for the fused form)
        factors_t, u_all, u_mean, u_std = self._unroll(ci, g, T, sample)  # (B', T, F), (B', T, U) x 3
        if self.co_dim > 0:
            log_q = _gaussian_log_prob(u_all, u_mean, u_std).sum(dim=(1, 2))
            kl_co = log_q - self.co_prior.log_prob(u_all)
        else:
            kl_co = g.new_zeros(g.shape[0])

        params = self.readout(factors_t).reshape(g.shape[0], T, C, self.observation.n_params)
        return LFADSOutput(params, factors_t, u_all, ic_mean, ic_std, kl_ic, kl_co)

    def _unroll(self, ci: torch.Tensor | None, g: torch.Tensor, T: int, sample: bool):
        """Controller + generator over T bins. Mathematically, per bin t:

            c_t = clip(GRU_con([ci_t, f_{t-1}], c_{t-1}));  u_t ~ N(u_mean_t, u_std_t^2) from c_t
            g_t = clip(GRU_gen(u_t, g_{t-1}));              f_t = W_f dropout(g_t)

        with f_{-1} = W_f dropout(g0). For speed on CPU (the loop is overhead-bound) it is
        computed in a fused form: the controller's input projection of ci is done for all bins
        in one matmul, the factor readout feeding the controller is folded into one weight
        (W_ih,f @ W_f), dropout masks are drawn once, and the factors of all bins come from one
        matmul after the loop. ci (B, T, 2Ec) or None without a controller; g = g0 (B, G).
        Returns factors (B, T, F) and u, u_mean, u_std (B, T, U).
        """
        cfg = self.cfg
        B = g.shape[0]
        clip = cfg.cell_clip
        G = cfg.gen_dim
        gen = self.generator
        p = self.dropout.p if self.training else 0.0
        if p > 0:  # one dropout mask per bin (and one for g0), drawn at once
            masks = torch.empty(T + 1, B, G, device=g.device, dtype=g.dtype).bernoulli_(1 - p) / (1 - p)
        kept = []  # dropout(g_t), t = -1 .. T-1
        gd = g * masks[0] if p > 0 else g
        kept.append(gd)
        if self.co_dim > 0:
            con = self.controller
            Ec2 = 2 * cfg.ci_enc_dim
            ci_gates = nnf.linear(ci, con.weight_ih[:, :Ec2], con.bias_ih).unbind(1)  # T x (B, 3Cn), one matmul
            w_gc = con.weight_ih[:, Ec2:] @ self.to_factors.weight  # (3Cn, G): dropout(g) -> controller gates
            c = self.con_h0.expand(B, -1)  # (B, Cn)
            noise = torch.randn(T, B, self.co_dim, device=g.device, dtype=g.dtype) if sample else None
            us, means, stds = [], [], []
            for t in range(T):
                gi = torch.addmm(ci_gates[t], gd, w_gc.t())  # (B, 3Cn)
                gh = torch.addmm(con.bias_hh, c, con.weight_hh.t())
                c = torch.clamp(_gru_gates(gi, gh, c), -clip, clip)  # (B, Cn)
                u_mean, u_logvar = nnf.linear(c, self.co_posterior.weight, self.co_posterior.bias).chunk(2, dim=-1)
                u_std = torch.sqrt(u_logvar.exp() + 1e-4)  # (B, U)
                u = u_mean + u_std * noise[t] if sample else u_mean
                gi = torch.addmm(gen.bias_ih, u, gen.weight_ih.t())  # (B, 3G)
                gh = torch.addmm(gen.bias_hh, g, gen.weight_hh.t())
                g = torch.clamp(_gru_gates(gi, gh, g), -clip, clip)  # (B, G)
                gd = g * masks[t + 1] if p > 0 else g
                kept.append(gd)
                us.append(u)
                means.append(u_mean)
                stds.append(u_std)
            u_all, u_mean_all, u_std_all = torch.stack(us, 1), torch.stack(means, 1), torch.stack(stds, 1)
        else:
            gi = gen.bias_ih.expand(B, -1)  # zero input: only the input bias reaches the gates
            for t in range(T):
                gh = torch.addmm(gen.bias_hh, g, gen.weight_hh.t())
                g = torch.clamp(_gru_gates(gi, gh, g), -clip, clip)
                kept.append(g * masks[t + 1] if p > 0 else g)
            u_all = u_mean_all = u_std_all = g.new_zeros(B, T, 0)
        factors = nnf.linear(torch.stack(kept[1:], dim=1), self.to_factors.weight)  # (B, T, F)
        return factors, u_all, u_mean_all, u_std_all


def _gru_gates(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from input and hidden projections (biases included), as torch.nn.GRUCell:
    r, z = sigmoid(gi_rz + gh_rz); n = tanh(gi_n + r * gh_n); h' = n + z * (h - n).
    gi, gh: (B, 3H); h: (B, H)."""
    H = h.shape[-1]
    # split (not slicing): its backward concatenates, where slicing would zero-fill full tensors
    gi_rz, gi_n = gi.split([2 * H, H], dim=1)
    gh_rz, gh_n = gh.split([2 * H, H], dim=1)
    r, z = torch.sigmoid(gi_rz + gh_rz).chunk(2, dim=1)
    n = torch.tanh(gi_n + r * gh_n)
    return n + z * (h - n)
