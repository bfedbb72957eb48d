import math

import numpy as np
import pytest
import torch
from scipy import stats

from nwb_autolfads.config import ModelConfig
from nwb_autolfads.model.lfads import LFADS, AR1Prior
from nwb_autolfads.model.observations import Gamma


def _model(**kw):
    cfg = ModelConfig(**{"ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 6, "gen_dim": 12,
                         "factor_dim": 3, **kw})
    return LFADS(5, cfg, Gamma())


def test_output_shapes():
    torch.manual_seed(0)
    out = _model()(torch.rand(4, 30, 5) + 0.1)
    assert out.params.shape == (4, 30, 5, 2)
    assert out.factors.shape == (4, 30, 3)
    assert out.inputs.shape == (4, 30, 2)
    assert out.ic_mean.shape == out.ic_std.shape == (4, 6)
    assert out.kl_ic.shape == out.kl_co.shape == (4,)
    assert torch.all(out.kl_ic >= 0)


def test_without_controller():
    out = _model(co_dim=0)(torch.rand(2, 10, 5) + 0.1)
    assert out.inputs.shape == (2, 10, 0)
    assert torch.all(out.kl_co == 0)


def test_needs_resolved_factor_dim():
    with pytest.raises(ValueError, match="factor_dim"):
        LFADS(5, ModelConfig(), Gamma())


def test_posterior_mean_pass_is_deterministic_and_sampling_is_seeded():
    model = _model().eval()
    x = torch.rand(3, 20, 5) + 0.1
    a, b = model(x, sample=False), model(x, sample=False)
    torch.testing.assert_close(a.params, b.params)
    torch.manual_seed(1)
    s1 = model(x, sample=True).params
    torch.manual_seed(1)
    s2 = model(x, sample=True).params
    torch.testing.assert_close(s1, s2)
    assert not torch.allclose(s1, a.params)


def test_generator_state_is_clipped():
    model = _model(cell_clip=0.01)
    with torch.no_grad():
        model.ic_to_g0.bias.fill_(100.0)
        model.to_factors.weight.fill_(1.0)
    out = model(torch.rand(2, 5, 5) + 0.1, sample=False)
    assert out.factors.abs().max() <= 12 * 0.01 + 1e-6  # |f| <= gen_dim * clip * |w|


@pytest.mark.parametrize("lag", [1, 2])
def test_controller_input_at_t_never_contains_x_t(lag):
    torch.manual_seed(0)
    model = _model(dropout=0.0, ci_lag=lag).eval()
    x = torch.rand(1, 10, 5) + 0.1
    for t in range(10):
        x2 = x.clone()
        x2[0, t] += 5.0
        ci1, ci2 = model.controller_inputs(x), model.controller_inputs(x2)
        torch.testing.assert_close(ci1[0, t], ci2[0, t])
        # and it does reach the neighbours (the encoder is not dead)
        assert not torch.allclose(ci1[0], ci2[0])


def test_ar1_log_prob_matches_scipy():
    prior = AR1Prior(2, tau=5.0, var=0.3)
    u = torch.randn(3, 7, 2, dtype=torch.float64)
    prior = prior.double()
    phi = math.exp(-1 / 5.0)
    expected = np.zeros(3)
    un = u.numpy()
    for b in range(3):
        for k in range(2):
            expected[b] += stats.norm.logpdf(un[b, 0, k], 0, math.sqrt(0.3))
            for t in range(1, 7):
                expected[b] += stats.norm.logpdf(un[b, t, k], phi * un[b, t - 1, k], math.sqrt(0.3 * (1 - phi**2)))
    np.testing.assert_allclose(prior.log_prob(u).detach().numpy(), expected, rtol=1e-6)


def test_gradients_reach_every_parameter():
    model = _model(dropout=0.0)
    model.init_readout_bias(torch.ones(5))
    out = model(torch.rand(4, 12, 5) + 0.1)
    loss = model.observation.nll(out.params, torch.rand(4, 12, 5) + 0.1).mean() + out.kl_ic.mean() + out.kl_co.mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def _reference_unroll(model, x, g, noise):
    """The controller/generator loop written the plain way with nn.GRUCell calls."""
    clip = model.cfg.cell_clip
    B, T, _ = x.shape
    f = model.to_factors(model.dropout(g))
    factors, us = [], []
    if model.co_dim > 0:
        ci = model.controller_inputs(x)
        c = model.con_h0.expand(B, -1)
    for t in range(T):
        if model.co_dim > 0:
            c = torch.clamp(model.controller(torch.cat([ci[:, t], f], dim=-1), c), -clip, clip)
            mean, logvar = model.co_posterior(c).chunk(2, dim=-1)
            u = mean + torch.sqrt(logvar.exp() + 1e-4) * noise[t]
            us.append(u)
        else:
            u = torch.zeros(B, 1, dtype=x.dtype)
        g = torch.clamp(model.generator(u, g), -clip, clip)
        f = model.to_factors(model.dropout(g))
        factors.append(f)
    return torch.stack(factors, 1), (torch.stack(us, 1) if us else None)


@pytest.mark.parametrize("co_dim", [0, 3])
def test_fused_unroll_equals_the_plain_grucell_loop(co_dim):
    torch.manual_seed(0)
    model = _model(co_dim=co_dim, dropout=0.0).double()
    x = torch.rand(4, 9, 5, dtype=torch.float64) + 0.1
    g0 = torch.randn(4, 12, dtype=torch.float64)
    torch.manual_seed(3)
    ci = model.controller_inputs(x) if co_dim else None
    factors, u, _, _ = model._unroll(ci, g0, 9, sample=True)
    torch.manual_seed(3)
    noise = torch.randn(9, 4, co_dim, dtype=torch.float64) if co_dim else None  # (T, B, U)
    ref_factors, ref_u = _reference_unroll(model, x, g0, noise)
    torch.testing.assert_close(factors, ref_factors)
    if co_dim:
        torch.testing.assert_close(u, ref_u)
    # the gradients agree too
    (factors.sum() + (u.sum() if co_dim else 0)).backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    (ref_factors.sum() + (ref_u.sum() if co_dim else 0)).backward()
    for n, p in model.named_parameters():
        if n in fused:
            torch.testing.assert_close(fused[n], p.grad, msg=n)


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = _model(dropout=0.5).double().train()
    x = torch.rand(2, 6, 5, dtype=torch.float64) + 0.1
    out = model(x, sample=False)
    assert torch.all(torch.isfinite(out.params))
    # some units are dropped in training: the outputs differ from the eval pass, which is repeatable
    evaluated = model.eval()(x, sample=False).factors
    assert not torch.allclose(out.factors, evaluated)
    torch.testing.assert_close(evaluated, model(x, sample=False).factors)


def test_several_posterior_samples_share_one_encoder_pass():
    model = _model().eval()
    x = torch.rand(3, 8, 5) + 0.1
    torch.manual_seed(0)
    out = model(x, sample=True, n_samples=4)
    assert out.params.shape == (12, 8, 5, 2) and out.inputs.shape == (12, 8, 2)
    # rows 0-3 are samples of window 0: same posterior, different draws
    torch.testing.assert_close(out.ic_mean[:4], model(x[:1], sample=False).ic_mean.expand(4, -1))
    assert not torch.allclose(out.params[0], out.params[1])
    # the posterior-mean pass of the expanded batch equals the per-window pass
    means = model(x, sample=False, n_samples=2).params
    torch.testing.assert_close(means[::2], model(x, sample=False).params)


@pytest.mark.parametrize("ci_dim", [8, 6])  # equal sizes run all four directions together
def test_encoders_equal_torch_nn_gru(ci_dim):
    torch.manual_seed(0)
    model = _model(dropout=0.0, ci_enc_dim=ci_dim).double()
    x = torch.rand(3, 7, 5, dtype=torch.float64, requires_grad=True)
    ic_enc, ci = model.encode(x)
    _, h_n = model.ic_encoder(x)
    ref_ic = torch.cat([h_n[0], h_n[1]], dim=-1)
    states, _ = model.ci_encoder(x)
    ref_ci = model._lag(states[..., :ci_dim], states[..., ci_dim:])
    torch.testing.assert_close(ic_enc, ref_ic)
    torch.testing.assert_close(ci, ref_ci)
    w1, w2 = torch.randn_like(ic_enc), torch.randn_like(ci)
    params = [x] + list(model.ic_encoder.parameters()) + list(model.ci_encoder.parameters())
    ours = torch.autograd.grad((w1 * ic_enc).sum() + (w2 * ci).sum(), params)
    ref = torch.autograd.grad((w1 * ref_ic).sum() + (w2 * ref_ci).sum(), params)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_one_model_for_spikes_and_emg():
    from nwb_autolfads.model.observations import Composite, Poisson

    cfg = ModelConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=6, gen_dim=12, factor_dim=3)
    obs = Composite([(Poisson(), 4), (Gamma(), 3)])
    model = LFADS(7, cfg, obs)
    x = torch.cat([torch.poisson(torch.full((2, 10, 4), 1.0)), torch.rand(2, 10, 3) + 0.1], dim=-1)
    model.init_readout_bias(x.mean(dim=(0, 1)))
    out = model(x)
    assert out.params.shape == (2, 10, 7, 2)
    nll = obs.nll(out.params, x)
    assert nll.shape == (2, 10, 7) and torch.all(torch.isfinite(nll))
    nll.mean().backward()
    assert model.readout.weight.grad is not None


def test_lead_in_bins_reach_only_the_initial_condition():
    torch.manual_seed(0)
    model = _model(dropout=0.0, lead_in_bins=4).eval()
    x = torch.rand(2, 4 + 9, 5) + 0.1
    out = model(x, sample=False)
    assert out.params.shape == (2, 9, 5, 2) and out.factors.shape == (2, 9, 3)
    x2 = x.clone()
    x2[:, :4] += 3.0  # change only the lead-in
    out2 = model(x2, sample=False)
    assert not torch.allclose(out.ic_mean, out2.ic_mean)  # the IC encoder reads it
    # the controller inputs come from the modelled bins only
    torch.testing.assert_close(model.encode(x)[1], model.encode(x2)[1])


def test_dropout_mask_rate_scale_and_generator():
    from nwb_autolfads.model.lfads import dropout_mask

    like = torch.zeros(())
    m = dropout_mask((200, 500), 0.3, torch.Generator().manual_seed(5), like)
    assert torch.all((m == 0) | torch.isclose(m, torch.tensor(1 / 0.7)))
    assert abs((m == 0).float().mean().item() - 0.3) < 0.01  # 100k draws: sd 0.0015
    assert abs(m.mean().item() - 1.0) < 0.02
    torch.testing.assert_close(m, dropout_mask((200, 500), 0.3, torch.Generator().manual_seed(5), like))
    assert m.dtype == like.dtype and dropout_mask((3,), 0.5, None, like.double()).dtype == torch.float64
