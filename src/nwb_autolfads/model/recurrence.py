"""The recurrences of LFADS with hand-written backward passes.

On a CPU the recurrences are overhead-bound: written with autograd, every bin adds dozens of
small graph nodes whose bookkeeping costs more than their arithmetic (and ``nn.GRU``'s CPU
backward is no better). Here the forward pass runs without a graph, saves what the backward
pass needs, and back-propagates through time in one loop of plain tensor operations; the weight
gradients of all bins are then formed with one matrix product each. Two recurrences:

- :func:`stacked_gru`: D independent GRUs run together with batched matrix products (the
  forward and backward directions of both encoders);
- :func:`controlled_generator`: the controller + generator loop below. It also runs M models
  at once (a stacked population, :mod:`nwb_autolfads.train.stacked`): weights then carry a leading
  member dimension (M, ...), states are (M, B, ...), and every matrix product is batched over
  the members (``baddbmm`` / ``bmm``); one model keeps the plain ``addmm`` path.

Few operations per bin: the forward pass writes every per-bin value into buffers preallocated
for all bins (``out=`` views made once, outside the loop), and the parts of each GRU step's
derivative that depend only on forward values (gate derivatives, the clip mask) are formed for all
bins at once before the backward loop, so that back-propagating one GRU step through one bin is
two elementwise products and one matrix product (:func:`_gru_factors`). In those buffers the gate
gradients of a GRU step are laid out as [n (input side), r, z, n (hidden side)]: the input-side
gradient is then the block [n, r, z] and the hidden-side one the block [r, z, n], both without
copies (input weights are used with their rows in the order n, r, z, see :func:`_nrz`).

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


def gru_gates(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from input and hidden projections (biases included), as torch.nn.GRUCell.
    gi, gh: (..., 3H); h: (..., H). Differentiable with autograd."""
    H = h.shape[-1]
    gi_rz, gi_n = gi.split([2 * H, H], dim=-1)
    gh_rz, hn = gh.split([2 * H, H], dim=-1)
    r, z = torch.sigmoid(gi_rz + gh_rz).chunk(2, dim=-1)
    n = torch.tanh(torch.addcmul(gi_n, r, hn))
    return torch.lerp(n, h, z)  # n + z * (h - n)


def _affine(bias, x, w_t, out=None):
    """bias + x @ w_t: ``addmm`` for one model (x (B, K)), ``baddbmm`` for a batch of models
    (x (M, B, K), w_t (M, K, N), bias broadcastable to (M, B, N)); into ``out`` when given."""
    f = torch.addmm if x.dim() == 2 else torch.baddbmm
    return f(bias, x, w_t) if out is None else f(bias, x, w_t, out=out)


def _nrz(x: torch.Tensor, H: int, dim: int) -> torch.Tensor:
    """Gate blocks of ``x`` along ``dim`` reordered from (r, z, n) to (n, r, z)."""
    return torch.cat([x.narrow(dim, 2 * H, H), x.narrow(dim, 0, 2 * H)], dim)


def _rzn(x: torch.Tensor, H: int, dim: int) -> torch.Tensor:
    """Gate blocks of ``x`` along ``dim`` reordered from (n, r, z) back to (r, z, n)."""
    return torch.cat([x.narrow(dim, H, 2 * H), x.narrow(dim, 0, H)], dim)


class _Buffers:
    """Per-bin values of a recurrence over T bins, each kind in one tensor (*lead, T, B, X) (lead =
    () for one model, (M,) for a batch of models) with its per-bin views (``unbind`` along time,
    made once). Without ``keep`` a kind that is not an output is one bin's tensor reused at every
    bin (nothing is kept for a backward pass)."""

    def __init__(self, like: torch.Tensor, lead: tuple[int, ...], T: int, B: int, keep: bool):
        self.like, self.lead, self.T, self.B, self.keep = like, lead, T, B, keep
        self.td = len(lead)

    def full(self, n: int, extra: int = 0) -> torch.Tensor:
        return self.like.new_empty(*self.lead, self.T + extra, self.B, n)

    def bins(self, n: int, extra: int = 0, output: bool = False):
        """(buffer, its per-bin views) for a kind of width n (T + extra bins)."""
        if self.keep or output:
            buf = self.full(n, extra)
            return buf, list(buf.unbind(self.td))
        one = self.like.new_empty(*self.lead, self.B, n)
        return None, [one] * (self.T + extra)


def _gru_step(gi_rz, gi_n, gh_rz, hn, h, rz, r, z, n, out):
    """One GRU step into preallocated views: rz = sigmoid(gi_rz + gh_rz) (r, z its halves),
    n = tanh(gi_n + r * hn), out = n + z * (h - n) (torch.nn.GRUCell's equations)."""
    torch.add(gi_rz, gh_rz, out=rz).sigmoid_()
    torch.addcmul(gi_n, r, hn, out=n).tanh_()
    torch.lerp(n, h, z, out=out)


def _gru_factors(h_prev, rz, n, hn, pre, clip):
    """The parts of a GRU step's derivative that depend only on forward values, for all bins at
    once. Inputs (..., H) (rz (..., 2H)); ``pre`` the state before clipping (None: no clip).
    Returns F (..., 4, H) and A (..., H) such that, for the gradient d of a step's (clipped)
    output, the gate gradients are d * F in the layout [n (input side), r, z, n (hidden side)]
    and the gradient reaching the previous state directly is d * A."""
    H = n.shape[-1]
    r, z = rz[..., :H], rz[..., H:]
    if pre is not None:  # clamp passes the gradient where it did not clip
        inside = (pre.abs() <= clip).to(n.dtype)
        zi = z * inside
        omz = inside - zi
    else:
        zi, omz = z, 1 - z
    F = n.new_empty(*n.shape[:-1], 4, H)
    bn = torch.mul(omz, 1 - n * n, out=F[..., 0, :])  # d a_n = d (1 - z)(1 - n^2)
    torch.mul(bn * hn, r * (1 - r), out=F[..., 1, :])  # d a_r = d a_n hn r (1 - r)
    torch.mul((h_prev - n) * zi, 1 - z, out=F[..., 2, :])  # d a_z = d (h - n) z (1 - z)
    torch.mul(bn, r, out=F[..., 3, :])  # d hn = d a_n r
    return F, zi


def _gate_grads(F: torch.Tensor):
    """The gate-gradient buffer for factors F (..., 4, H), its per-bin views along dimension ``td``
    and the input-side (n, r, z) and hidden-side (r, z, n) blocks of every bin (..., 3H)."""
    H = F.shape[-1]
    G = torch.empty_like(F)
    flat = G.flatten(-2)  # (..., 4H)
    return G, flat[..., : 3 * H], flat[..., H:]


def _wgrad(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d^T x for d (..., R, N), x (..., R, K): a weight gradient summed over R rows. With K < N it
    is formed as (x^T d)^T, which the BLAS does several times faster when K is small (e.g. the
    generator's input weights, K = inferred inputs)."""
    if x.shape[-1] < d.shape[-1]:
        return (x.transpose(-1, -2) @ d).transpose(-1, -2)
    return d.transpose(-1, -2) @ x


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
        bufs = _Buffers(gi, (D,), T, B, keep=not isinstance(ctx, _NoCtx))
        hs = gi.new_empty(D, T + 1, B, H)  # h_{-1} = 0, then every state
        hs[:, 0].zero_()
        h = hs.unbind(1)
        gh, ghs = bufs.bins(3 * H)
        rz, rzs = bufs.bins(2 * H)
        n, ns = bufs.bins(H)
        w_t, bias = w_hh.transpose(1, 2), b_hh[:, None, :]
        gis = gi.unbind(1)
        for t in range(T):
            torch.baddbmm(bias, h[t], w_t, out=ghs[t])  # (D, B, 3H)
            _gru_step(gis[t][..., : 2 * H], gis[t][..., 2 * H:], ghs[t][..., : 2 * H], ghs[t][..., 2 * H:], h[t],
                      rzs[t], rzs[t][..., :H], rzs[t][..., H:], ns[t], h[t + 1])
        ctx.keep = keep
        ctx.save_for_backward(w_hh, hs, gh, rz, n)
        return hs[:, 1:][keep], hs[:, -1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_last):
        w_hh, hs, gh, rz, n = ctx.saved_tensors
        D, T1, B, H = hs.shape
        T = T1 - 1
        F, A = _gru_factors(hs[:, :-1], rz, n, gh[..., 2 * H:], None, None)  # (D, T, B, 4, H), (D, T, B, H)
        G, d_gi_nrz, d_gh = _gate_grads(F)
        Fs, As, Gs, d_ghs = F.unbind(1), A.unbind(1), G.unbind(1), d_gh.unbind(1)
        d = d_last.clone() if d_last is not None else hs.new_zeros(D, B, H)  # gradient reaching the state
        d_his = d_hs.unbind(1) if d_hs is not None and d_hs.numel() else None
        for t in range(T - 1, -1, -1):
            if d_his is not None:
                d[ctx.keep].add_(d_his[t])  # d is this step's own buffer
            torch.mul(d.unsqueeze(-2), Fs[t], out=Gs[t])
            d = torch.baddbmm(d * As[t], d_ghs[t], w_hh)
        # dW_hh = sum over t of d_gh_t^T h_{t-1}: views, no copies
        d_w = torch.bmm(d_gh.flatten(1, 2).transpose(1, 2), hs[:, :-1].flatten(1, 2))
        return _rzn(d_gi_nrz, H, -1), d_w, d_gh.sum(dim=(1, 2)), None


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


def _run(ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh, masks, noise, clip,
         keep: bool):
    """The forward recurrence without a graph, every per-bin value written into buffers (see
    :class:`_Buffers`). Returns the outputs (gd, u, u_mean, u_std) and, with ``keep``, the
    buffers the backward pass reads."""
    lead = g0.shape[:-2]  # () for one model, (M,) for a stacked population (member first)
    td = len(lead)  # the time dimension of inputs, outputs and buffers
    T, B = ci_gates.shape[td], g0.shape[-2]
    G, Cn, U = g0.shape[-1], c0.shape[-1], w_post.shape[-2] // 2
    if td:  # stacked population: biases (M, N) -> (M, 1, N) for baddbmm
        b_chh, b_post, b_gih, b_ghh = (b.unsqueeze(-2) for b in (b_chh, b_post, b_gih, b_ghh))
    w_gc_t, w_chh_t, w_post_t, w_gih_t, w_ghh_t = (w.transpose(-1, -2) for w in (w_gc, w_chh, w_post, w_gih, w_ghh))
    bufs = _Buffers(g0, lead, T, B, keep)
    cis = ci_gates.unbind(td)
    masks_t = masks.unbind(td) if masks is not None else None
    noise_t = noise.unbind(td) if noise is not None else None
    (gic, gics), (ghc, ghcs), (rzc, rzcs), (nc, ncs), (prec, precs), (cs, css) = _controller_buffers(bufs, Cn)
    (post, posts), (ev, evs), (s, ss), (u, us) = _posterior_buffers(bufs, U, sampled=noise is not None)
    (gig, gigs), (ghg, ghgs), (rzg, rzgs), (ng, ngs), (preg, pregs), (gs, gss), (gd, gds) = \
        _generator_buffers(bufs, G, dropout=masks is not None)
    if masks is not None:
        torch.mul(g0, masks_t[0], out=gds[0])
    css[0].copy_(c0)
    gss[0].copy_(g0)
    for t in range(T):
        # controller: c_t = clip(GRU(ci_gates[t] + gd_{t-1} W_gc^T, c_{t-1} W_chh^T + b_chh))
        _affine(cis[t], gds[t], w_gc_t, out=gics[t])
        _affine(b_chh, css[t], w_chh_t, out=ghcs[t])
        _gru_step(gics[t][..., : 2 * Cn], gics[t][..., 2 * Cn:], ghcs[t][..., : 2 * Cn], ghcs[t][..., 2 * Cn:], css[t],
                  rzcs[t], rzcs[t][..., :Cn], rzcs[t][..., Cn:], ncs[t], precs[t])
        torch.clamp(precs[t], -clip, clip, out=css[t + 1])
        # posterior: [m, l] = c_t W_post^T + b_post; s = sqrt(exp(l) + floor); u = m + s * eps
        _affine(b_post, css[t + 1], w_post_t, out=posts[t])
        torch.exp(posts[t][..., U:], out=evs[t])
        torch.add(evs[t], _STD_FLOOR, out=ss[t]).sqrt_()
        if noise is not None:
            torch.addcmul(posts[t][..., :U], ss[t], noise_t[t], out=us[t])
        # generator: g_t = clip(GRU(u_t W_gih^T + b_gih, g_{t-1} W_ghh^T + b_ghh)); gd_t = g_t * mask
        _affine(b_gih, us[t], w_gih_t, out=gigs[t])
        _affine(b_ghh, gss[t], w_ghh_t, out=ghgs[t])
        _gru_step(gigs[t][..., : 2 * G], gigs[t][..., 2 * G:], ghgs[t][..., : 2 * G], ghgs[t][..., 2 * G:], gss[t],
                  rzgs[t], rzgs[t][..., :G], rzgs[t][..., G:], ngs[t], pregs[t])
        torch.clamp(pregs[t], -clip, clip, out=gss[t + 1])
        if masks is not None:
            torch.mul(gss[t + 1], masks_t[t + 1], out=gds[t + 1])
    sl = (slice(None),) * td
    u_out = u if noise is not None else u.clone()  # u = u_mean without sampling: two outputs, two tensors
    outputs = (gd[sl + (slice(1, None),)], u_out, post[..., :U], s)
    saved = (gd, ghc, rzc, nc, prec, cs, post, ev, s, u, ghg, rzg, ng, preg, gs) if keep else None
    return outputs, saved


def _controller_buffers(bufs: _Buffers, Cn: int):
    """Per-bin buffers of the controller: input and hidden gate pre-activations (3Cn), r/z gates
    (2Cn), candidate n and the pre-clip state (Cn), and the states c_{-1} = c0, c_0 .. c_{T-1}."""
    return (bufs.bins(3 * Cn), bufs.bins(3 * Cn), bufs.bins(2 * Cn), bufs.bins(Cn), bufs.bins(Cn),
            bufs.bins(Cn, extra=1))


def _posterior_buffers(bufs: _Buffers, U: int, sampled: bool):
    """Per-bin buffers of the inferred inputs' posterior: [mean, log-variance] (2U, an output),
    exp(log-variance), the standard deviation (an output) and u (its own buffer when sampled,
    else a view of the mean)."""
    post = bufs.bins(2 * U, output=True)
    ev, s = bufs.bins(U), bufs.bins(U, output=True)
    u = bufs.bins(U, output=True) if sampled else (post[0][..., :U], [p[..., :U] for p in post[1]])
    return post, ev, s, u


def _generator_buffers(bufs: _Buffers, G: int, dropout: bool):
    """Per-bin buffers of the generator (as the controller's) and, with coordinated dropout, of the
    dropped-out states gd (an output; else gd is g itself)."""
    gig, ghg, rzg, ng, preg = bufs.bins(3 * G), bufs.bins(3 * G), bufs.bins(2 * G), bufs.bins(G), bufs.bins(G)
    gs = bufs.bins(G, extra=1, output=not dropout)  # g_{-1} = g0, then every g_t
    gd = bufs.bins(G, extra=1, output=True) if dropout else gs  # gd_{-1}, then the outputs
    return gig, ghg, rzg, ng, preg, gs, gd


class _ControlledGenerator(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh,
                masks, noise, clip):
        outputs, saved = _run(ci_gates, g0, c0, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh,
                              masks, noise, clip, keep=True)
        ctx.clip = clip
        ctx.save_for_backward(w_gc, w_chh, w_post, w_gih, w_ghh, masks, noise, *saved)
        return outputs

    @staticmethod
    def backward(ctx, d_kept, d_u_out, d_m_out, d_s_out):
        (w_gc, w_chh, w_post, w_gih, w_ghh, masks, noise,
         gd, ghc, rzc, nc, prec, cs, post, ev, s, u, ghg, rzg, ng, preg, gs) = ctx.saved_tensors
        clip = ctx.clip
        td = gs.dim() - 3  # time dimension: 0, or 1 (stacked population: member first)
        T = gs.shape[td] - 1
        G, Cn, U = gs.shape[-1], cs.shape[-1], s.shape[-1]
        sl = (slice(None),) * td
        prev, this = sl + (slice(None, -1),), sl + (slice(1, None),)

        # forward-only parts of the derivatives, all bins at once
        Fc, Ac = _gru_factors(cs[prev], rzc, nc, ghc[..., 2 * Cn:], prec, clip)
        Fg, Ag = _gru_factors(gs[prev], rzg, ng, ghg[..., 2 * G:], preg, clip)
        Gc, d_gic_nrz, d_ghc = _gate_grads(Fc)
        Gg, d_gig_nrz, d_ghg = _gate_grads(Fg)
        k = ev / (2 * s)  # d s / d l
        d_post = torch.empty_like(post)  # (T, B, 2U): [d m, d l]
        d_um = d_u_out + d_m_out  # what reaches m directly
        if noise is not None:
            nk = noise * k  # d l = (d_s_out + (d m - d_m_out) eps) k
            base_l = d_s_out * k - d_m_out * nk
        else:
            d_post[..., U:] = d_s_out * k
        # the direct gradient of g_t (its dropped-out value gd_t is an output)
        d_gk = d_kept * masks[this] if masks is not None else d_kept
        w_gih_nrz, w_gc_nrz = _nrz(w_gih, G, -2), _nrz(w_gc, Cn, -2)

        Fcs, Acs, Gcs, d_gics, d_ghcs = (x.unbind(td) for x in (Fc, Ac, Gc, d_gic_nrz, d_ghc))
        Fgs, Ags, Ggs, d_gigs, d_ghgs = (x.unbind(td) for x in (Fg, Ag, Gg, d_gig_nrz, d_ghg))
        d_posts, d_ums, d_gks = d_post.unbind(td), d_um.unbind(td), d_gk.unbind(td)
        m_t = masks.unbind(td) if masks is not None else None
        nks, bases = (nk.unbind(td), base_l.unbind(td)) if noise is not None else (None, None)
        dg = d_gks[T - 1]  # gradient reaching g_t from later bins and its output
        dc = torch.zeros_like(cs[sl + (0,)])  # gradient reaching c_t from later bins
        dgd = None  # gradient reaching gd_t from the controller of t + 1
        for t in range(T - 1, -1, -1):
            # generator: g_t = clip(GRU(u_t W_gih^T + b, g_{t-1} W_ghh^T + b)), gd_t = g_t * mask
            if dgd is not None:
                dg = torch.addcmul(dg, dgd, m_t[t + 1]) if m_t is not None else dg + dgd
            torch.mul(dg.unsqueeze(-2), Fgs[t], out=Ggs[t])
            direct = torch.addcmul(d_gks[t - 1], dg, Ags[t]) if t > 0 else dg * Ags[t]
            dg = _affine(direct, d_ghgs[t], w_ghh)
            # inferred input: u = m + s * eps, s = sqrt(exp(l) + floor)
            d_m = d_posts[t][..., :U]
            _affine(d_ums[t], d_gigs[t], w_gih_nrz, out=d_m)
            if noise is not None:
                torch.addcmul(bases[t], d_m, nks[t], out=d_posts[t][..., U:])
            # controller: c_t = clip(GRU(ci_gates[t] + gd_{t-1} W_gc^T, c_{t-1} W_chh^T + b))
            d = _affine(dc, d_posts[t], w_post)
            torch.mul(d.unsqueeze(-2), Fcs[t], out=Gcs[t])
            dc = _affine(d * Acs[t], d_ghcs[t], w_chh)
            dgd = d_gics[t] @ w_gc_nrz
        dg0 = dg + (dgd * m_t[0] if m_t is not None else dgd)

        # weight gradients of all bins at once: (T * B, N)^T (T * B, K) per model
        def wgrad(d, x):
            return _wgrad(d.flatten(td, td + 1), x.flatten(td, td + 1))

        def bgrad(d):
            return d.sum(dim=(td, td + 1))

        d_gic = _rzn(d_gic_nrz, Cn, -1)  # the gradient of ci_gates, gates in their order
        grads = (
            d_gic, dg0, dc,
            wgrad(d_gic, gd[prev]), wgrad(d_ghc, cs[prev]), bgrad(d_ghc),
            wgrad(d_post, cs[this]), bgrad(d_post),
            _rzn(wgrad(d_gig_nrz, u), G, -2), _rzn(bgrad(d_gig_nrz), G, -1),
            wgrad(d_ghg, gs[prev]), bgrad(d_ghg),
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
