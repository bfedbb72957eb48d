"""The recurrences of LFADS with hand-written backward passes.

On a CPU the recurrences are overhead-bound: written with autograd, every bin adds dozens of
small graph nodes whose bookkeeping costs more than their arithmetic (and ``nn.GRU``'s CPU
backward is no better). Here the forward pass runs without a graph, saves what the backward
pass needs, and back-propagates through time in one loop of plain tensor operations; the weight
gradients of all bins are then formed with one matrix product each. Two recurrences:

- :func:`stacked_gru`: D independent GRUs run together with batched matrix products (the
  forward and backward directions of both encoders);
- :func:`controlled_generator`: the controller + generator loop below. It also runs M models
  at once (a stacked population, :mod:`nwb_autolfads.stacked`): weights then carry a leading
  member dimension (M, ...), states are (M, B, ...), and every matrix product is batched over
  the members (``baddbmm`` / ``bmm``); one model keeps the plain ``addmm`` path.

Tests compare values and gradients with ``nn.GRU`` / ``nn.GRUCell`` and run gradcheck.

Per bin t (B batch, Cn controller units, G generator units, U inferred inputs):

    a_c = ci_gates[t] + gd_{t-1} W_gc^T             controller input gates          (B, 3Cn)
    c_t = clip(GRU(a_c, c_{t-1} W_chh^T + b_chh))                                   (B, Cn)
    [m_t, l_t] = c_t W_post^T + b_post;  s_t = sqrt(exp(l_t) + 1e-4)                (B, U) x 2
    u_t = m_t + s_t * eps_t        (u_t = m_t without sampling)                     (B, U)
    g_t = clip(GRU(u_t W_gih^T + b_gih, g_{t-1} W_ghh^T + b_ghh))                   (B, G)
    gd_t = g_t * mask_{t+1}        (dropout; gd_{-1} = g_{-1} * mask_0, g_{-1} = g0)

with GRU(a, h_proj) over previous state h: r, z = sigmoid(a_rz + h_proj_rz);
n = tanh(a_n + r * h_proj_n); h' = n + z * (h - n)  (torch.nn.GRUCell's equations).
"""

from __future__ import annotations

import torch

__all__ = ["controlled_generator", "stacked_gru", "gru_gates"]

_STD_FLOOR = 1e-4
_ONE = torch.ones(())


def gru_gates(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from input and hidden projections (biases included), as torch.nn.GRUCell.
    gi, gh: (..., 3H); h: (..., H). Differentiable with autograd."""
    return _gru_forward(gi, gh, h, None)[0]


def _gru_forward(gi, gh, h, clip, out=None):
    """GRU step (+ clip unless ``clip`` is None) over the last dimension, returning the new state
    (written into ``out`` when given) and what the backward pass needs. gi, gh (..., 3H);
    h (..., H). Splits (not slices) the gates, so that it is also cheap under autograd
    (:func:`gru_gates`)."""
    H = h.shape[-1]
    gi_rz, gi_n = gi.split([2 * H, H], dim=-1)
    gh_rz, hn = gh.split([2 * H, H], dim=-1)
    rz = torch.sigmoid(gi_rz + gh_rz)
    r, z = rz.chunk(2, dim=-1)
    n = torch.tanh(torch.addcmul(gi_n, r, hn))  # few, fused operations: a step is overhead-bound
    if clip is None:
        new = torch.lerp(n, h, z) if out is None else torch.lerp(n, h, z, out=out)  # n + z * (h - n)
        return new, (rz, n, hn, None)
    new = torch.lerp(n, h, z)
    inside = new.abs() <= clip  # clamp passes the gradient where it did not clip
    return (new.clamp(-clip, clip) if out is None else torch.clamp(new, -clip, clip, out=out)), (rz, n, hn, inside)


def _gru_backward(d_new, h, saved, d_gi, d_gh):
    """Gradients of a GRU step (+ clip). d_new (..., H) is the gradient of the new state; the
    gradients of the input and hidden projections are written into d_gi, d_gh (..., 3H) (views
    of preallocated buffers: no concatenation); returns the direct gradient of h (..., H)."""
    rz, n, hn, inside = saved
    H = h.shape[-1]
    r, z = rz.chunk(2, dim=-1)
    d = d_new * inside if inside is not None else d_new
    drz = torch.addcmul(rz, rz, rz, value=-1)  # sigmoid' = s (1 - s), both gates at once
    dpre_n = d_gi[..., 2 * H:]
    torch.mul(torch.addcmul(d, d, z, value=-1), torch.addcmul(_ONE.to(n), n, n, value=-1), out=dpre_n)  # d(1-z)(1-n^2)
    torch.mul(dpre_n * hn, drz[..., :H], out=d_gi[..., :H])
    torch.mul(d * (h - n), drz[..., H:], out=d_gi[..., H: 2 * H])
    d_gh[..., : 2 * H].copy_(d_gi[..., : 2 * H])
    torch.mul(dpre_n, r, out=d_gh[..., 2 * H:])
    return d * z


class _StackedGRU(torch.autograd.Function):
    """D independent GRUs (e.g. the two directions of two encoders) run together with batched
    matrix products. gi (D, T, B, 3H): input projections, in each direction's processing order
    (time-reversed for backward directions); w_hh (D, 3H, H); b_hh (D, 3H); h_{-1} = 0.

    Returns the states of the directions ``keep`` (a slice of D) at every step (D', T, B, H) and
    the final state of every direction (D, B, H) (bin T - 1 of a forward direction, bin 0 of a
    backward one). Outputs the caller does not use get no gradient: no zero-filled gradient of
    the whole state sequence is built for the directions of which only the final state is read."""

    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, keep):
        ctx.set_materialize_grads(False)
        D, T, B, _ = gi.shape
        H = w_hh.shape[-1]
        h = gi.new_zeros(D, B, H)
        hs = gi.new_empty(D, T, B, H)
        w_t, bias = w_hh.transpose(1, 2), b_hh[:, None, :]
        gis, outs, saved = gi.unbind(1), hs.unbind(1), []
        for t in range(T):
            gh = torch.baddbmm(bias, h, w_t)  # (D, B, 3H)
            saved.append(_gru_forward(gis[t], gh, h, None, out=outs[t])[1])
            h = outs[t]
        ctx.saved, ctx.keep = saved, keep
        ctx.save_for_backward(w_hh, hs)
        return hs[keep], hs[:, -1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_last):
        w_hh, hs = ctx.saved_tensors
        D, T, B, H = hs.shape
        h0 = hs.new_zeros(D, B, H)  # h_{-1}
        d_gi = hs.new_empty(D, T, B, 3 * H)
        d_gh = hs.new_empty(D, T, B, 3 * H)
        carry = d_last.clone() if d_last is not None else hs.new_zeros(D, B, H)
        d_his = d_hs.unbind(1) if d_hs is not None and d_hs.numel() else None
        prev, d_gis, d_ghs = hs.unbind(1), d_gi.unbind(1), d_gh.unbind(1)
        for t in range(T - 1, -1, -1):
            if d_his is not None:
                carry[ctx.keep] += d_his[t]  # carry is this step's own buffer
            dh = _gru_backward(carry, prev[t - 1] if t > 0 else h0, ctx.saved[t], d_gis[t], d_ghs[t])
            carry = torch.baddbmm(dh, d_ghs[t], w_hh)
        # dW_hh = sum over t >= 1 of d_gh_t^T h_{t-1} (h_{-1} = 0): views, no shifted copy of the states
        d_w = torch.bmm(d_gh[:, 1:].reshape(D, (T - 1) * B, 3 * H).transpose(1, 2), hs[:, :-1].reshape(D, (T - 1) * B, H))
        return d_gi, d_w, d_gh.reshape(D, T * B, 3 * H).sum(dim=1), None


def stacked_gru(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, keep: slice = slice(None),
                last: bool = False):
    """Run D independent GRUs from zero states (see :class:`_StackedGRU`).

    Parameters
    ----------
    gi : (D, T, B, 3H) input projections (biases included), in each direction's processing order.
    w_hh, b_hh : (D, 3H, H), (D, 3H) hidden weights and biases.
    keep : the directions whose every state is returned (default all).
    last : also return the final state of every direction.

    Returns
    -------
    The states of the ``keep`` directions (D', T, B, H) in processing order, and with ``last``
    the final states (D, B, H). Reading final states this way (rather than indexing the state
    sequence) keeps the backward pass from building a zero-filled gradient of all states.
    """
    if torch.is_grad_enabled() and any(a.requires_grad for a in (gi, w_hh, b_hh)):
        hs, final = _StackedGRU.apply(gi, w_hh, b_hh, keep)
    else:
        with torch.no_grad():
            hs, final = _StackedGRU.forward(_NoCtx(), gi, w_hh, b_hh, keep)
    return (hs, final) if last else hs


def _affine(bias, x, w_t):
    """bias + x @ w_t: ``addmm`` for one model (x (B, K)), ``baddbmm`` for a stacked population
    (x (M, B, K), w_t (M, K, N), bias broadcastable to (M, B, N))."""
    return torch.addmm(bias, x, w_t) if x.dim() == 2 else torch.baddbmm(bias, x, w_t)


def _flat(xs, td: int):
    """Per-bin values (a list of (B, X) or (M, B, X), or a (T, B, X) / (M, T, B, X) buffer; ``td``
    the time dimension) as the rows of one matrix per model: (T * B, X), or (M, T * B, X) for a
    stacked population."""
    x = torch.stack(xs, dim=td) if isinstance(xs, list) else xs
    return x.flatten(td, td + 1)


def _run(ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh, masks, noise, clip,
         keep: bool):
    """The forward recurrence without a graph. With ``keep`` it also returns the per-bin values
    the backward pass needs."""
    td = g0.dim() - 2  # the time dimension: 0 for one model, 1 for a stacked population (member first)
    T = ci_gates.shape[td]
    U = w_post.shape[-2] // 2
    if td:  # stacked population: biases (M, N) -> (M, 1, N) for baddbmm
        b_chh, b_post, b_gih, b_ghh = (b.unsqueeze(-2) for b in (b_chh, b_post, b_gih, b_ghh))
    ci_gates = ci_gates.unbind(td)
    masks = masks.unbind(td) if masks is not None else None
    noise = noise.unbind(td) if noise is not None else None
    gd = g0 * masks[0] if masks is not None else g0
    g, c = g0, c0
    steps = ([], [], [], [], [], [], [], [], []) if keep else None
    kept, us, ms, ss = [], [], [], []
    w_gc_t, w_chh_t, w_post_t, w_gih_t, w_ghh_t = (w.transpose(-1, -2) for w in (w_gc, w_chh, w_post, w_gih, w_ghh))
    for t in range(T):
        g_prev, gd_prev, c_prev = g, gd, c
        gi = _affine(ci_gates[t], gd, w_gc_t)
        gh = _affine(b_chh, c, w_chh_t)
        c, sc = _gru_forward(gi, gh, c, clip)
        post = _affine(b_post, c, w_post_t)
        m, ev = post[..., :U], post[..., U:].exp()
        s = torch.sqrt(ev + _STD_FLOOR)
        u = torch.addcmul(m, s, noise[t]) if noise is not None else m
        gi = _affine(b_gih, u, w_gih_t)
        gh = _affine(b_ghh, g, w_ghh_t)
        g, sg = _gru_forward(gi, gh, g, clip)
        gd = g * masks[t + 1] if masks is not None else g
        kept.append(gd)
        us.append(u)
        ms.append(m)
        ss.append(s)
        if keep:
            for store, value in zip(steps, (g_prev, gd_prev, c_prev, c, u, s, ev, sc, sg)):
                store.append(value)
    return (torch.stack(kept, td), torch.stack(us, td), torch.stack(ms, td), torch.stack(ss, td)), steps


class _ControlledGenerator(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh,
                masks, noise, clip):
        outputs, steps = _run(ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh,
                              masks, noise, clip, keep=True)
        ctx.steps = steps
        ctx.save_for_backward(w_gc, w_chh, w_post, w_gih, w_ghh, masks, noise)
        return outputs

    @staticmethod
    def backward(ctx, d_kept, d_u_out, d_m_out, d_s_out):
        w_gc, w_chh, w_post, w_gih, w_ghh, masks, noise = ctx.saved_tensors
        prev_g, prev_gd, prev_c, cs, us, ss, evs, saved_c, saved_g = ctx.steps
        T = len(cs)
        dg = torch.zeros_like(prev_g[0])  # gradient reaching g_t from later bins
        dc = torch.zeros_like(prev_c[0])  # gradient reaching c_t from later bins
        dgd = torch.zeros_like(prev_gd[0])  # gradient reaching gd_t from the controller of t + 1
        td = dg.dim() - 2  # time dimension of inputs, outputs and buffers: 0, or 1 (stacked: member first)
        G, Cn, U2 = dg.shape[-1], dc.shape[-1], w_post.shape[-2]
        shape = (T, *dg.shape[:-1]) if td == 0 else (dg.shape[0], T, dg.shape[1])  # (T, B) or (M, T, B)
        # gradients of the gate projections and posterior parameters, all bins (per-bin views below)
        bufs = [dg.new_empty(*shape, n) for n in (3 * Cn, 3 * Cn, 3 * G, 3 * G, U2)]
        d_gi_c, d_gh_c, d_gi_g, d_gh_g, d_post = (b.unbind(td) for b in bufs)
        masks = masks.unbind(td) if masks is not None else None
        noise = noise.unbind(td) if noise is not None else None
        d_kept, d_u_out, d_m_out, d_s_out = (d.unbind(td) for d in (d_kept, d_u_out, d_m_out, d_s_out))
        U = U2 // 2
        for t in range(T - 1, -1, -1):
            # generator: g_t = clip(GRU(u_t W_gih^T + b, g_{t-1} W_ghh^T + b)), gd_t = g_t * mask
            dgd_t = d_kept[t] + dgd
            dg_t = torch.addcmul(dg, dgd_t, masks[t + 1]) if masks is not None else dg + dgd_t
            dh = _gru_backward(dg_t, prev_g[t], saved_g[t], d_gi_g[t], d_gh_g[t])
            dg = _affine(dh, d_gh_g[t], w_ghh)
            # inferred input: u = m + s * eps, s = sqrt(exp(l) + floor)
            du = _affine(d_u_out[t], d_gi_g[t], w_gih)
            torch.add(du, d_m_out[t], out=d_post[t][..., :U])
            ds = torch.addcmul(d_s_out[t], du, noise[t]) if noise is not None else d_s_out[t]
            torch.mul(ds, evs[t] / (2 * ss[t]), out=d_post[t][..., U:])
            # controller: c_t = clip(GRU(ci_gates[t] + gd_{t-1} W_gc^T, c_{t-1} W_chh^T + b))
            dc_t = _affine(dc, d_post[t], w_post)
            dh = _gru_backward(dc_t, prev_c[t], saved_c[t], d_gi_c[t], d_gh_c[t])
            dc = _affine(dh, d_gh_c[t], w_chh)
            dgd = d_gi_c[t] @ w_gc
        dg0 = dg + (dgd * masks[0] if masks is not None else dgd)

        # weight gradients of all bins at once: (T * B, N)^T (T * B, K) per model
        A_gi_c, A_gh_c, A_gi_g, A_gh_g, A_post = (_flat(b, td) for b in bufs)
        grads = (
            bufs[0], dg0, dc,
            A_gi_c.transpose(-1, -2) @ _flat(prev_gd, td), A_gh_c.transpose(-1, -2) @ _flat(prev_c, td),
            A_gh_c.sum(-2),
            A_post.transpose(-1, -2) @ _flat(cs, td), A_post.sum(-2),
            A_gi_g.transpose(-1, -2) @ _flat(us, td), A_gi_g.sum(-2),
            A_gh_g.transpose(-1, -2) @ _flat(prev_g, td), A_gh_g.sum(-2),
        )
        return (*grads, None, None, None)


def controlled_generator(ci_gates: torch.Tensor, g0: torch.Tensor, c0: torch.Tensor, w_gc: torch.Tensor,
                         w_chh: torch.Tensor, b_chh: torch.Tensor, w_post: torch.Tensor, b_post: torch.Tensor,
                         w_gih: torch.Tensor, b_gih: torch.Tensor, w_ghh: torch.Tensor, b_ghh: torch.Tensor,
                         masks: torch.Tensor | None, noise: torch.Tensor | None, clip: float):
    """Run the recurrence (see the module docstring). ci_gates (T, B, 3Cn), g0 (B, G), c0 (B, Cn),
    masks (T + 1, B, G) or None, noise (T, B, U) or None. Returns gd (T, B, G) (the dropped-out
    generator states the factors are read from), u, u_mean, u_std (T, B, U).

    A stacked population of M models: every weight and bias with a leading member dimension
    (w_gc (M, 3Cn, G), b_chh (M, 3Cn), ...), g0 (M, B, G), c0 (M, B, Cn), ci_gates (M, T, B, 3Cn),
    masks (M, T + 1, B, G), noise (M, T, B, U); the outputs are then (M, T, B, .). The members do
    not interact: member m's outputs and gradients are those of the one model with its slices."""
    args = (ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh, masks, noise, clip)
    if torch.is_grad_enabled() and any(a.requires_grad for a in args[:12]):
        return _ControlledGenerator.apply(*args)
    with torch.no_grad():
        return _run(*args, keep=False)[0]


class _NoCtx:
    """Stands in for autograd's ctx when no gradient is needed (nothing is kept)."""

    def set_materialize_grads(self, value):
        pass

    def save_for_backward(self, *tensors):
        pass

    def __setattr__(self, name, value):
        pass
