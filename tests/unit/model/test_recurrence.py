import pytest
import torch

from nwb_autolfads.model.recurrence import controlled_generator, gru_gates


def _inputs(T=5, B=3, Cn=4, G=6, U=2, dropout=True, sample=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.5):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_(True)

    args = [r(T, B, 3 * Cn), r(B, G, scale=1.0), r(B, Cn), r(3 * Cn, G), r(3 * Cn, Cn), r(3 * Cn), r(2 * U, Cn),
            r(2 * U), r(3 * G, U), r(3 * G), r(3 * G, G), r(3 * G)]
    masks = ((torch.rand(T + 1, B, G, generator=g) > 0.3).double() / 0.7) if dropout else None
    noise = torch.randn(T, B, U, generator=g, dtype=torch.float64) if sample else None
    return args, masks, noise


def _plain(args, masks, noise, clip):
    """The recurrence written with autograd, step by step."""
    ci_gates, g, c, w_gc, w_chh, b_chh, w_post, b_post, w_gih, b_gih, w_ghh, b_ghh = args
    U = w_post.shape[0] // 2
    gd = g * masks[0] if masks is not None else g
    kept, us, ms, ss = [], [], [], []
    for t in range(ci_gates.shape[0]):
        c = torch.clamp(gru_gates(ci_gates[t] + gd @ w_gc.t(), c @ w_chh.t() + b_chh, c), -clip, clip)
        post = c @ w_post.t() + b_post
        m, s = post[:, :U], torch.sqrt(post[:, U:].exp() + 1e-4)
        u = m + s * noise[t] if noise is not None else m
        g = torch.clamp(gru_gates(u @ w_gih.t() + b_gih, g @ w_ghh.t() + b_ghh, g), -clip, clip)
        gd = g * masks[t + 1] if masks is not None else g
        kept.append(gd), us.append(u), ms.append(m), ss.append(s)
    return torch.stack(kept), torch.stack(us), torch.stack(ms), torch.stack(ss)


@pytest.mark.parametrize("dropout, sample, clip", [(True, True, 0.6), (False, False, 5.0), (True, False, 5.0)])
def test_values_and_gradients_match_autograd(dropout, sample, clip):
    args, masks, noise = _inputs(dropout=dropout, sample=sample)
    fused = controlled_generator(*args, masks, noise, clip)
    plain = _plain(args, masks, noise, clip)
    if clip < 1:
        assert (plain[0].abs() >= clip - 1e-12).any()  # the clip is active somewhere
    weights = [torch.randn_like(o) for o in plain]  # a random loss over every output
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b)
    g_fused = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, fused)), args)
    g_plain = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, plain)), args)
    for i, (a, b) in enumerate(zip(g_fused, g_plain)):
        torch.testing.assert_close(a, b, msg=f"gradient of argument {i}")


def test_gradcheck_against_finite_differences():
    args, masks, noise = _inputs(T=3, B=2, Cn=3, G=4, U=2)
    assert torch.autograd.gradcheck(lambda *a: controlled_generator(*a, masks, noise, 5.0), args)


def test_no_graph_without_gradients():
    args, masks, noise = _inputs()
    with torch.no_grad():
        out = controlled_generator(*args, masks, noise, 5.0)
    assert not any(o.requires_grad for o in out)
    # without gradients the per-bin intermediates share one bin's buffers: same outputs, all four,
    # with and without dropout masks and sampling
    for m, e in ((masks, noise), (None, None)):
        with torch.no_grad():
            out = controlled_generator(*args, m, e, 5.0)
        for a, b in zip(out, controlled_generator(*args, m, e, 5.0)):
            torch.testing.assert_close(a, b.detach())


def test_stacked_gru_gradcheck():
    from nwb_autolfads.model.recurrence import stacked_gru

    g = torch.Generator().manual_seed(0)
    gi = torch.randn(2, 4, 3, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = (0.5 * torch.randn(2, 9, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    b = torch.randn(2, 9, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(stacked_gru, (gi, w, b))


def test_stacked_gru_final_states_and_kept_directions():
    """keep/last return the same states as the full sequence and the same gradients, including
    when only final states are read (no gradient for the other states) and the gradcheck."""
    from nwb_autolfads.model.recurrence import stacked_gru

    g = torch.Generator().manual_seed(1)
    gi = torch.randn(3, 5, 2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = (0.5 * torch.randn(3, 6, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    b = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    full = stacked_gru(gi, w, b)
    kept, last = stacked_gru(gi, w, b, keep=slice(1, 3), last=True)
    torch.testing.assert_close(kept, full[1:])
    torch.testing.assert_close(last, full[:, -1])
    # gradients of a loss on the final states of direction 0 and every state of directions 1, 2
    c = torch.randn(3, 5, 2, 2, generator=g, dtype=torch.float64)
    ref = torch.autograd.grad((full[0, -1] * c[0, 0]).sum() + (full[1:] * c[1:]).sum(), (gi, w, b))
    new = torch.autograd.grad((last[0] * c[0, 0]).sum() + (kept * c[1:]).sum(), (gi, w, b))
    for r, n in zip(ref, new):
        torch.testing.assert_close(n, r)
    only_last = torch.autograd.grad((stacked_gru(gi, w, b, keep=slice(3, 3), last=True)[1] * c[:, 0]).sum(), gi)[0]
    ref_last = torch.autograd.grad((stacked_gru(gi, w, b)[:, -1] * c[:, 0]).sum(), gi)[0]
    torch.testing.assert_close(only_last, ref_last)
    assert torch.autograd.gradcheck(lambda *a: stacked_gru(*a, keep=slice(0, 2), last=True), (gi, w, b))
