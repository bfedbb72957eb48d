"""Training one model over several sessions: masked loss, read-ins, a single model and a population
(sequential and in processes), and the execution plan."""

import math

import pytest
import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, TrainConfig, build_config
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.testing import gamma_session_windows, gamma_windows
from nwb_autolfads.train.isolation import train_single
from nwb_autolfads.train.loop import WindowSampler, evaluate_nll, train_model, train_steps
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.pbt.member import Member
from nwb_autolfads.train.resources import Execution, choose_execution
from nwb_autolfads.train.stacked import StackedExecutor
from nwb_autolfads.train.training_data import TrainingData

TINY = ModelConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=1, ic_dim=8, gen_dim=8, factor_dim=3)
CFG = TrainConfig(max_steps=12, min_steps=0, ramp_steps=4, batch_size=8, valid_every=4)


def _data(counts=(3, 5), n=16, seed=0):
    parts = gamma_session_windows(counts, n=n, T=12, seed=seed)
    return TrainingData.from_sessions([p[:12] for p in parts], [p[12:] for p in parts], Gamma(),
                                      [f"s{i}" for i in range(len(counts))])


def _model(data, cfg=TINY, seed=0):
    torch.manual_seed(seed)
    model = LFADS(data.n_channels, cfg, Gamma(), data.model_sessions)
    model.init_from_data(data)
    return model


def _one_step(x, mask, lr=0.0):
    """The loss and every gradient of one deterministic step (no augmentation, no dropout)."""
    model = LFADS(4, ModelConfig(**{**TINY.__dict__, "dropout": 0.0}), Gamma())
    torch.manual_seed(0)
    model.init_readout_bias(torch.ones(4))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(1)
    sums, _ = train_steps(model, opt, x, CFG, CoordinatedDropout(0.0), TemporalShift(0.0, 0), WindowSampler(
        x.shape[0], 8, generator=gen), 1, generator=gen, mask=mask)
    return sums["nll"], {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_a_masked_channel_changes_nothing_in_the_loss_or_gradients_of_the_others():
    torch.manual_seed(0)
    x = gamma_windows(16, 12, 4)
    mask = torch.ones_like(x)
    mask[..., 2] = 0
    garbage = x.clone()
    garbage[..., 2] = torch.where(torch.rand(x[..., 2].shape) < 0.5, 0.0, 1e6)  # 0 is outside a Gamma's support
    torch.manual_seed(5)
    nll_a, grads_a = _one_step(x, mask)
    torch.manual_seed(5)
    nll_b, grads_b = _one_step(garbage, mask)
    assert math.isfinite(nll_a) and nll_a == nll_b
    assert grads_a.keys() == grads_b.keys() and all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)
    assert all(torch.isfinite(g).all() for g in grads_b.values())
    model = LFADS(4, TINY, Gamma())
    model.init_readout_bias(torch.ones(4))
    a, b = evaluate_nll(model, x, mask=mask), evaluate_nll(model, garbage, mask=mask)
    assert a == pytest.approx(b) and math.isfinite(b)
    # the mean is over the observed elements only
    with torch.no_grad():
        model.eval()
        nll = model.observation.nll(model(x * mask, sample=False).params, x)
    assert a == pytest.approx(float(nll[..., [0, 1, 3]].mean()), rel=1e-5)


def test_padded_readin_rows_stay_zero_and_training_lowers_the_validation_nll():
    data = _data()
    model = _model(data)
    before = evaluate_nll(model, data.valid, mask=data.valid_mask, session=data.valid_session)
    cfg = TrainConfig(max_steps=40, min_steps=0, ramp_steps=10, batch_size=8, valid_every=10, lr=1e-2)
    res = train_model(model, data, cfg, AugmentConfig(cd_rate=0.3, shift_std=1.0, sv_rate=0.1), progress=False)
    after = evaluate_nll(model, data.valid, mask=data.valid_mask, session=data.valid_session)
    assert len(res.history) == 4 and all(math.isfinite(h["sample_valid_nll"]) for h in res.history)
    assert after < before
    assert (model.readin[0, 3:] == 0).all() and model.readin[0, :3].abs().sum() > 0
    assert (model.readout_weight[0, :, 6:] == 0).all()  # its padded channels' read-out columns


def test_a_model_of_other_sessions_does_not_fit():
    data = _data()
    with pytest.raises(ValueError, match="sessions"):
        train_model(LFADS(5, TINY, Gamma()), data, CFG, AugmentConfig(), progress=False)


@pytest.mark.parametrize("mode", ["sequential", "processes"])
def test_train_single_on_two_sessions(mode):
    data = _data()
    model = _model(data)
    res = train_single(model, data, CFG, AugmentConfig(), Execution(mode, 1, 1, "test"), progress=False)
    assert len(res.history) == 3 and math.isfinite(res.best_valid_nll)
    assert model.session_channels == (3, 5) and (model.readin[0, 3:] == 0).all()


def test_a_population_trains_two_sessions_and_copies_every_parameter():
    data = _data()
    cfg = build_config("smoke", overrides={"pbt.population": 2, "pbt.max_generations": 2, "pbt.generation_steps": 4,
                                           "train.valid_every": 2}).resolved(5)
    cfg_model = cfg.model

    def make():
        return _model(data, cfg_model, seed=torch.randint(0, 1000, ()).item())
    model, result = train_population(make, data, cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=0, progress=False,
                                     execution=Execution("sequential", 1, 1, "test"))
    assert model.session_channels == (3, 5) and len(result.pbt_history) == 4
    assert all(math.isfinite(r["metric"]) for r in result.pbt_history)
    # exploit: a member takes over every parameter of the one it copies, read-ins and read-outs included
    a, b = make(), make()
    assert not torch.equal(a.readout_weight, b.readout_weight)
    ma, mb = Member.fresh(a, {"lr": 1e-3, "dropout": 0.1}, 1e-8), Member.fresh(b, {"lr": 1e-3, "dropout": 0.1}, 1e-8)
    mb.load(ma.state())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert {"readin", "readout_weight", "readout_bias"} <= set(a.state_dict())


def test_a_population_of_two_sessions_in_worker_processes():
    data = _data()
    cfg = build_config("smoke", overrides={"pbt.population": 2, "pbt.max_generations": 1, "pbt.generation_steps": 2,
                                           "train.valid_every": 2}).resolved(5)
    model, result = train_population(lambda: _model(data, cfg.model), data, cfg.model, cfg.train, cfg.augment,
                                     cfg.pbt, seed=0, progress=False, execution=Execution("processes", 2, 1, "test"))
    assert model.session_channels == (3, 5) and all(math.isfinite(r["metric"]) for r in result.pbt_history)


def test_several_sessions_never_train_stacked():
    small = ModelConfig(ic_enc_dim=16, ci_enc_dim=16, con_dim=16, gen_dim=16, ic_dim=16, factor_dim=3)
    for cores, idle, workers, gpu in ((1, 1, 0, "cpu"), (4, 4, 0, "cpu"), (4, 4, 1, "cpu"), (4, 4, 0, "cuda")):
        assert choose_execution(8, small, 5, gpu, cores=cores, idle=idle, workers=workers).mode.startswith("stacked")
        plan = choose_execution(8, small, 5, gpu, cores=cores, idle=idle, workers=workers, sessions=2)
        assert plan.mode in ("sequential", "processes") and "2 sessions" in plan.describe()
    for mode in ("stacked", "stacked-processes"):
        with pytest.raises(ConfigError, match=f"pbt.execution={mode} cannot train a model of 3 sessions"):
            choose_execution(8, small, 5, cores=4, execution=mode, sessions=3)
    data = _data()
    cfg = build_config("smoke").resolved(5)
    with pytest.raises(ConfigError, match="stacked"):
        StackedExecutor(data, cfg.model, cfg.train, cfg.augment)
    with pytest.raises(ConfigError, match="stacked"):
        train_population(lambda: _model(data, cfg.model), data, cfg.model, cfg.train, cfg.augment, cfg.pbt,
                         progress=False, execution=Execution("stacked", 1, 1, "test"))
    assert choose_execution(1, small, 5, cores=4, idle=4, sessions=2).mode == "sequential"  # one model: as before
