"""The stacked population (nwb_autolfads.train.stacked) against the members trained one by one
(training.train_steps with each member's generator, pbt._train_generation)."""

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from nwb_autolfads.train import stacked as S
from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.config import PBTConfig, build_config
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.pbt.member import Member, member_streams, train_config, train_generation
from nwb_autolfads.train.pbt.population import explore, tournament
from nwb_autolfads.train.loop import WindowSampler, train_steps

HPS = [dict(lr=4e-3, dropout=0.1, cd_rate=0.3, l2_gen_scale=1e-3, l2_con_scale=1e-3, kl_co_scale=1e-4, kl_ic_scale=1e-4),
       dict(lr=1e-3, dropout=0.0, cd_rate=0.0, l2_gen_scale=1e-1, l2_con_scale=1e-2, kl_co_scale=1e-5, kl_ic_scale=1e-3),
       dict(lr=2e-3, dropout=0.3, cd_rate=0.5, l2_gen_scale=1e-4, l2_con_scale=1.0, kl_co_scale=1e-6, kl_ic_scale=1e-6),
       dict(lr=3e-3, dropout=0.2, cd_rate=0.1, l2_gen_scale=1e-2, l2_con_scale=1e-3, kl_co_scale=1e-4, kl_ic_scale=1e-5)]
C = 4


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread is fastest (and a shared machine is not oversubscribed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(co_dim=2, lead_in=0, ci_enc_dim=8, **train):
    return build_config(overrides={
        "model": {"ic_enc_dim": 8, "ci_enc_dim": ci_enc_dim, "con_dim": 8, "co_dim": co_dim, "ic_dim": 4,
                  "gen_dim": 10, "factor_dim": 3, "lead_in_bins": lead_in},
        "train": {"batch_size": 5, **train}})


def _members(cfg, dtype, hps=HPS):
    out = []
    for k, hp in enumerate(hps):
        torch.manual_seed(k)
        model = LFADS(C, cfg.model, Gamma()).to(dtype)
        member = Member(model, torch.optim.Adam(model.parameters(), lr=hp["lr"], eps=cfg.train.adam_eps), dict(hp))
        member.apply()
        out.append(member)
    return out


def _data(n, T, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, T, C, generator=g) + 0.05).to(dtype)


def _samplers(n, batch, seeds):
    return [WindowSampler(n, batch, generator=torch.Generator().manual_seed(s)) for s in seeds]


def _ref_steps(m: Member, x, cfg, n_steps, seed, ramp_steps):
    """The one-member path: train_steps with the member's own generator (what the sequential and
    process executors run); returns its means and steps done, advancing ``m.steps`` as they do."""
    gen = torch.Generator().manual_seed(seed)
    tcfg = dataclasses.replace(train_config(cfg.train, m.hp), ramp_steps=ramp_steps)
    shift = TemporalShift(cfg.augment.shift_std, cfg.augment.shift_max)
    sums, k = train_steps(m.model, m.opt, x, tcfg, CoordinatedDropout(m.hp["cd_rate"]), shift,
                          WindowSampler(x.shape[0], tcfg.batch_size, generator=gen), n_steps, m.steps, generator=gen)
    m.steps += k if sums is not None else k - 1
    return sums


def _worst(a: Member, b: Member) -> float:
    """Largest relative difference of the weights and Adam states of two members."""
    worst = 0.0
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        worst = max(worst, float((pa - pb).detach().abs().max() / pa.detach().abs().max().clamp_min(1e-12)))
    sa, sb = a.opt.state_dict()["state"], b.opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert float(sa[i]["step"]) == float(sb[i]["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            x, y = sa[i][key], sb[i][key]
            worst = max(worst, float((x - y).abs().max() / x.abs().max().clamp_min(1e-30)))
    return worst


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("co_dim,lead_in,ci_enc_dim", [(2, 0, 8), (0, 0, 8), (2, 3, 6)])
def test_stacked_steps_equal_the_members_one_by_one(dtype, tol, co_dim, lead_in, ci_enc_dim):
    """Same draws, same math: weights, Adam states and losses of 4 members with different
    hyperparameters (lr, dropout, cd_rate 0 and > 0, KL/L2 weights) equal train_steps run member
    by member with each member's generator."""
    cfg = _cfg(co_dim, lead_in, ci_enc_dim)
    x = _data(23, 12 + lead_in, dtype)  # 23 windows, batch 5: a pass is 5 + 5 + 5 + 5 + 3, crossed in 6 steps
    ref, stk = _members(cfg, dtype), _members(cfg, dtype)
    for m in ref + stk:
        m.steps = 3  # inside the ramp (10 steps): per-member ramp factors from the members' own counts
    n = 6
    means_ref = [_ref_steps(m, x, cfg, n, k, ramp_steps=10) for k, m in enumerate(ref)]
    pop = S.StackedPopulation.from_members(stk)
    sums = S.stacked_steps(pop, x, cfg.train, cfg.augment, n, _samplers(23, 5, range(4)), ramp_steps=10)
    for k, m in enumerate(stk):
        pop.store(k, m)
    for a, b, ma, sb in zip(ref, stk, means_ref, sums):
        assert b.steps == a.steps == 3 + n
        assert _worst(a, b) < tol
        assert sb["n"] == n
        for key in ("nll", "kl_ic", "kl_co", "l2"):
            assert sb[key] / n == pytest.approx(ma[key], rel=tol, abs=1e-12)
    # the members really differ (no accidental sharing of draws or weights)
    assert len({round(s["nll"], 6) for s in sums}) == len(sums)


def test_stacked_samplers_must_be_in_step():
    """Members whose window samplers are at different points of their permutations would stack
    batches of different sizes: refused with a message, not silently mixed."""
    cfg = _cfg()
    x = _data(23, 12, torch.float64)
    pop = S.StackedPopulation.from_members(_members(cfg, torch.float64, HPS[:2]))
    samplers = _samplers(23, 5, range(2))
    for _ in range(4):
        samplers[0].next()  # member 0's next batch is the pass's last (3 windows); member 1's has 5
    with pytest.raises(RuntimeError, match="not in step"):
        S.stacked_steps(pop, x, cfg.train, cfg.augment, 1, samplers, ramp_steps=10)


def _sequential_generation(members, x, vx, cfg, n_steps, g, seed):
    for k, m in enumerate(members):
        train_generation(m, x, vx, cfg.train, cfg.augment, n_steps, g, member_streams(seed, g, k))


def _exploit_explore(members, rng, ranges):
    """The population loop's exploit/explore (pbt.train_population)."""
    scores = [m.smoothed for m in members]
    parents = tournament(scores, rng)
    sources = {p: members[p].state() for k, p in enumerate(parents) if p != k}
    for k, p in enumerate(parents):
        if p != k:
            members[k].load(sources[p])
            members[k].hp = explore(sources[p]["hp"], ranges, rng)
            members[k].apply()
    return parents


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 5e-5)])
def test_generations_with_exploit_explore_stacked_equal_sequential(dtype, tol):
    """Three generations of 4 members (validation every 4 of each member's steps and at the
    generation's end, the ramp crossing the first two generations, exploit/explore between
    generations as pbt.train_population does it): weights, Adam states, metrics and histories
    equal the members trained one by one by pbt._train_generation. In float64 to ~1e-15; in
    float32 batched and plain matrix products round differently (largest seen: 1.2e-5 of a small
    bias's largest value)."""
    cfg = _cfg(ramp_steps=10, valid_every=4, valid_windows=6)
    x, vx = _data(23, 12, dtype), _data(9, 12, dtype, seed=1)
    ranges = PBTConfig().ranges()
    seq, stk = _members(cfg, dtype), _members(cfg, dtype)
    ex = S.StackedExecutor(TrainingData(x, vx, Gamma()), cfg.model, cfg.train, cfg.augment)
    assert ex.valid_x.shape[0] == 6  # the fixed validation subset, as the other executors evaluate
    vsub = ex.valid_x
    copied = 0
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    checks = {0: [4, 6], 1: [8, 12], 2: [16, 18]}  # every 4 of the member's steps, and each generation's end
    for g in range(3):
        _sequential_generation(seq, x, vsub, cfg, 6, g, 11)
        ex.generation(stk, 6, g, 11)
        for a, b in zip(seq, stk):
            assert b.steps == a.steps == 6 * (g + 1)
            assert _worst(a, b) < tol
            assert b.smoothed == pytest.approx(a.smoothed, rel=tol)
            assert [r["step"] for r in b.history if r["generation"] == g] == checks[g]
            assert len(b.history) == len(a.history)
            for ra, rb in zip(a.history, b.history):
                assert ra.keys() == rb.keys()
                for key in ra:
                    assert rb[key] == pytest.approx(ra[key], rel=tol, abs=1e-12)
        pa = _exploit_explore(seq, rng_a, ranges)
        pb = _exploit_explore(stk, rng_b, ranges)
        assert pa == pb
        copied += sum(p != k for k, p in enumerate(pa))
        for a, b in zip(seq, stk):
            assert a.hp == b.hp
    assert copied > 0  # exploit happened (and the next generation still matched)
    ex.close()


def test_a_member_out_of_step_is_checked_on_its_own_schedule():
    """A member that diverged in an earlier generation (fewer steps) and was not replaced is
    validated at multiples of train.valid_every of its own count, as on the one-member path."""
    dtype = torch.float64
    cfg = _cfg(ramp_steps=0, valid_every=4)
    x, vx = _data(23, 12, dtype), _data(9, 12, dtype, seed=1)
    seq, stk = _members(cfg, dtype, HPS[:3]), _members(cfg, dtype, HPS[:3])
    for m in (seq[1], stk[1]):
        m.steps = 3
    for m in (seq[2], stk[2]):
        m.steps = 5
    _sequential_generation(seq, x, vx, cfg, 7, 0, 3)
    S.StackedExecutor(TrainingData(x, vx, Gamma()), cfg.model, cfg.train, cfg.augment).generation(stk, 7, 0, 3)
    for a, b in zip(seq, stk):
        assert [r["step"] for r in b.history] == [r["step"] for r in a.history]
        assert _worst(a, b) < 1e-11
        for ra, rb in zip(a.history, b.history):
            for key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=1e-11, abs=1e-12)
    assert [r["step"] for r in stk[1].history] == [4, 8, 10]
    assert [r["step"] for r in stk[2].history] == [8, 12]


def test_exploit_copies_weights_adam_state_and_hyperparameters_in_the_stack():
    """StackedPopulation.copy is exploit inside the stacked tensors: the next steps equal those of
    a member that loaded the winner's state (Member.load) and took the explored hyperparameters."""
    dtype = torch.float64
    cfg = _cfg()
    x = _data(23, 12, dtype)
    stk, ref = _members(cfg, dtype), _members(cfg, dtype)
    pop = S.StackedPopulation.from_members(stk)
    S.stacked_steps(pop, x, cfg.train, cfg.augment, 3, _samplers(23, 5, range(4)), ramp_steps=10)
    for k, m in enumerate(ref):  # the same 3 steps on the reference path
        _ref_steps(m, x, cfg, 3, k, 10)
    new_hp = dict(HPS[0], lr=7e-4, dropout=0.25, cd_rate=0.2, kl_ic_scale=3e-6)
    pop.copy(0, 2, new_hp)
    for n in pop.names:
        for t in (pop.params[n], pop.exp_avg[n], pop.exp_avg_sq[n], pop.step[n]):
            assert torch.equal(t[2], t[0])
    assert float(pop.step["readout.bias"][2]) == 3.0 and pop.steps[2] == 3
    assert all(pop.hp[key][2] == new_hp[key] for key in new_hp)
    assert torch.count_nonzero(pop.exp_avg_sq["generator.weight_hh"][2]) > 0  # a real Adam state was copied
    ref[2].load(ref[0].state())
    ref[2].hp = new_hp
    ref[2].apply()
    S.stacked_steps(pop, x, cfg.train, cfg.augment, 4, _samplers(23, 5, range(50, 54)), ramp_steps=10)
    _ref_steps(ref[2], x, cfg, 4, 52, 10)
    pop.store(2, stk[2])
    assert _worst(ref[2], stk[2]) < 1e-12


def test_gradient_clipping_is_per_member():
    """Each member's gradients are clipped to its own global norm, as clip_grad_norm_ does for one
    model: a member with huge gradients does not shrink another's."""
    dtype = torch.float64
    cfg = _cfg()
    members = _members(cfg, dtype, HPS[:3])
    pop = S.StackedPopulation.from_members(members)
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1e-3, 1e3, 1.0], dtype=dtype)  # norms far below, far above and near max_norm
    for p in pop.params.values():
        p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * scale.view(-1, *[1] * (p.dim() - 1))
    expected = []
    for k in range(3):  # torch's own clipping, member by member
        grads = [p.grad[k].clone() for p in pop.params.values()]
        holders = [torch.nn.Parameter(torch.zeros_like(t)) for t in grads]
        for h, t in zip(holders, grads):
            h.grad = t
        norm = float(torch.nn.utils.clip_grad_norm_(holders, max_norm=50.0))
        expected.append(([h.grad for h in holders], norm))
    lr = torch.tensor(pop.hp["lr"], dtype=torch.float64)
    S._clip_and_step(pop, 50.0, lr, torch.ones(3, dtype=torch.bool))
    for k, (grads, norm) in enumerate(expected):
        clipped = [p.grad[k] for p in pop.params.values()]
        for a, b in zip(clipped, grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        total = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in clipped])))
        assert total == pytest.approx(min(norm, 50.0), rel=1e-6)  # clip_grad_norm_ adds 1e-6 to the norm
        # Adam's first moment after one step from zero is (1 - beta1) x the clipped gradient
        for n, a in zip(pop.names, clipped):
            torch.testing.assert_close(pop.exp_avg[n][k], 0.1 * a, rtol=1e-12, atol=1e-300)
    assert expected[0][1] < 50.0 < expected[1][1]  # one member unclipped, one clipped


def test_a_diverging_member_stops_alone():
    """A member whose loss is NaN stops with its weights and Adam state untouched; the others train
    exactly as they would alone (nothing leaks between members)."""
    dtype = torch.float64
    cfg = _cfg()
    x = _data(23, 12, dtype)
    ref, stk = _members(cfg, dtype), _members(cfg, dtype)
    for m in (ref[1], stk[1]):
        with torch.no_grad():
            m.model.readout.bias[0] = math.nan
    before = copy.deepcopy(stk[1].model.state_dict())
    sums_ref = [_ref_steps(m, x, cfg, 4, k, 10) for k, m in enumerate(ref)]
    pop = S.StackedPopulation.from_members(stk)
    sums = S.stacked_steps(pop, x, cfg.train, cfg.augment, 4, _samplers(23, 5, range(4)), 10)
    for k, m in enumerate(stk):
        pop.store(k, m)
    assert sums_ref[1] is None and sums[1] is None and pop.active == [True, False, True, True]
    assert stk[1].steps == 0 and not stk[1].opt.state
    for key, value in stk[1].model.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True, rtol=0, atol=0)
    for k in (0, 2, 3):
        assert _worst(ref[k], stk[k]) < 1e-12


def test_train_population_runs_stacked_and_refuses_an_unknown_execution():
    cfg = build_config(overrides={
        "model": {"ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 4, "gen_dim": 10,
                  "factor_dim": 3},
        "train": {"batch_size": 8, "ramp_steps": 3, "valid_every": 2},
        "pbt": {"population": 3, "max_generations": 2, "generation_steps": 3, "execution": "stacked"}})
    x, vx = _data(24, 12, torch.float32), _data(8, 12, torch.float32, seed=1)
    torch.manual_seed(0)
    model, result = train_population(lambda: LFADS(C, cfg.model, Gamma()), TrainingData(x, vx, Gamma()), cfg.model, cfg.train, cfg.augment,
                                     cfg.pbt, progress=False)
    assert result.execution.startswith("stacked")
    assert math.isfinite(result.best_valid_nll)
    assert [r["steps"] for r in result.pbt_history] == [3] * 3 + [6] * 3
    assert [h["step"] for h in result.history] == [2, 3, 4, 6]  # every 2 steps, and at each generation's end
    with pytest.raises(ConfigError, match="pbt.execution"):
        PBTConfig(execution="vectorised")
