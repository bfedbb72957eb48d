import math

import pytest
import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, TrainConfig
from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model import LFADS
from nwb_autolfads.observations import Gamma
from nwb_autolfads.testing import gamma_windows
from nwb_autolfads.training import evaluate_nll, split_train_valid, train_model


def _data(n=40, T=20, C=4, seed=0):
    return gamma_windows(n, T, C, seed)


def _model(C=4):
    cfg = ModelConfig(ic_enc_dim=16, ci_enc_dim=8, con_dim=8, co_dim=1, ic_dim=8, gen_dim=16, factor_dim=3)
    return LFADS(C, cfg, Gamma())


def test_split_train_valid():
    train, valid = split_train_valid(12, 5)
    assert valid.tolist() == [4, 9]
    assert sorted(train.tolist() + valid.tolist()) == list(range(12))
    train, valid = split_train_valid(3, 5)
    assert valid.tolist() == [2] and train.tolist() == [0, 1]


def test_training_lowers_the_validation_nll_and_restores_the_best():
    torch.manual_seed(0)
    x = _data()
    model = _model()
    model.init_readout_bias(x.mean(dim=(0, 1)))
    before = evaluate_nll(model, x[30:])
    cfg = TrainConfig(max_epochs=40, min_epochs=0, ramp_epochs=5, batch_size=10, early_stopping_patience=100)
    res = train_model(model, x[:30], x[30:], cfg, AugmentConfig(cd_rate=0.3, shift_std=1.0), progress=False)
    after = evaluate_nll(model, x[30:])
    assert len(res.history) == 40
    assert after < before - 0.05
    assert res.best_valid_nll == pytest.approx(min(h["smoothed_valid_nll"] for h in res.history[5:]))
    assert {"epoch", "train_nll", "valid_nll", "smoothed_valid_nll", "kl_ic", "kl_co", "l2", "lr"} <= set(res.history[0])


def test_early_stopping():
    torch.manual_seed(0)
    x = _data()
    model = _model()
    # a learning rate too small to change float32 weights: the validation NLL never improves
    cfg = TrainConfig(max_epochs=200, min_epochs=0, ramp_epochs=0, lr=1e-30, lr_min=0.0, batch_size=10,
                      early_stopping_patience=3, smoothing=0.0)
    res = train_model(model, x[:30], x[30:], cfg, AugmentConfig(), progress=False)
    assert res.stopped_early and len(res.history) == 4  # first epoch + 3 without improvement


def test_training_is_deterministic_for_a_seed():
    x = _data()
    results = []
    for _ in range(2):
        torch.manual_seed(5)
        model = _model()
        train_model(model, x[:30], x[30:], TrainConfig(max_epochs=3, min_epochs=0, ramp_epochs=1, batch_size=10),
                    AugmentConfig(), progress=False)
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_divergence_is_recovered_then_reported():
    torch.manual_seed(0)
    x = _data()
    bad = x.clone()
    bad[0, 0, 0] = float("nan")  # every epoch that touches this window diverges
    model = _model()
    cfg = TrainConfig(max_epochs=20, min_epochs=0, ramp_epochs=0, batch_size=40)
    with pytest.raises(TrainingError, match="diverged"):
        train_model(model, bad[:30], x[30:], cfg, AugmentConfig(), progress=False)
    assert all(torch.all(torch.isfinite(p)) for p in model.parameters())


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path):
    x = _data()
    cfg = TrainConfig(max_epochs=6, min_epochs=0, ramp_epochs=2, batch_size=10, early_stopping_patience=100)
    aug = AugmentConfig(cd_rate=0.3, shift_std=1.0)

    torch.manual_seed(11)
    straight = _model()
    res_a = train_model(straight, x[:30], x[30:], cfg, aug, progress=False, checkpoint=tmp_path / "a.pt")

    torch.manual_seed(11)
    first = _model()
    ck = tmp_path / "b.pt"
    train_model(first, x[:30], x[30:], TrainConfig(**{**cfg.__dict__, "max_epochs": 3}), aug, progress=False,
                checkpoint=ck)  # "killed" after epoch 3: the checkpoint is what survives
    torch.manual_seed(999)  # a new process: another seed, another initialisation
    resumed = _model()
    res_b = train_model(resumed, x[:30], x[30:], cfg, aug, progress=False, checkpoint=ck)

    assert [h["valid_nll"] for h in res_a.history] == [h["valid_nll"] for h in res_b.history]
    assert res_a.best_epoch == res_b.best_epoch
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # written atomically


def test_a_finished_checkpoint_does_not_train_again(tmp_path):
    x = _data()
    cfg = TrainConfig(max_epochs=2, min_epochs=0, ramp_epochs=1, batch_size=10)
    torch.manual_seed(0)
    model = _model()
    train_model(model, x[:30], x[30:], cfg, AugmentConfig(), progress=False, checkpoint=tmp_path / "c.pt")
    before = [p.detach().clone() for p in model.parameters()]
    res = train_model(model, x[:30], x[30:], cfg, AugmentConfig(), progress=False, checkpoint=tmp_path / "c.pt")
    assert len(res.history) == 2
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)


def test_sample_validation_holds_elements_out_and_reports_their_nll(monkeypatch):
    torch.manual_seed(0)
    x = _data()
    model = _model()
    seen = []
    original = model.forward

    def spy(enc_in, *a, **k):
        seen.append(enc_in.detach().clone())
        return original(enc_in, *a, **k)

    monkeypatch.setattr(model, "forward", spy)
    cfg = TrainConfig(max_epochs=3, min_epochs=0, ramp_epochs=1, batch_size=30)
    aug = AugmentConfig(cd_rate=0.0, shift_std=0.0, sv_rate=0.2)
    torch.manual_seed(1)
    res = train_model(model, x[:30], x[30:], cfg, aug, progress=False)
    torch.manual_seed(1)  # replay the RNG: the mask is drawn first, then the first epoch's order
    held = (torch.rand(x[:30].shape) < 0.2).float()
    # every training forward pass saw zeros exactly at the held-out elements of its windows
    first = seen[0]
    perm = torch.randperm(30)
    assert torch.all(first[held[perm] == 1] == 0)
    assert all("sample_valid_nll" in h and math.isfinite(h["sample_valid_nll"]) for h in res.history)


def test_temporal_shift_applies_one_shift_to_companions():
    from nwb_autolfads.augment import TemporalShift

    torch.manual_seed(0)
    x = torch.rand(8, 12, 3)
    y, twin = TemporalShift(2.0, 3)(x, x.clone())
    assert torch.equal(y, twin)


def test_training_with_a_lead_in():
    torch.manual_seed(0)
    x = _data(T=24)
    cfg = ModelConfig(ic_enc_dim=16, ci_enc_dim=8, con_dim=8, co_dim=1, ic_dim=8, gen_dim=16, factor_dim=3,
                      lead_in_bins=4)
    model = LFADS(4, cfg, Gamma())
    res = train_model(model, x[:30], x[30:], TrainConfig(max_epochs=2, min_epochs=0, ramp_epochs=1, batch_size=10),
                      AugmentConfig(sv_rate=0.1), progress=False)
    assert all(math.isfinite(h["valid_nll"]) and math.isfinite(h["sample_valid_nll"]) for h in res.history)


def test_progress_bar_marks_early_stopping_and_labels_its_numbers(monkeypatch, capsys):
    import nwb_autolfads.training as training

    monkeypatch.setattr(training, "evaluate_nll", lambda *a, **k: 1.0)  # never improves: stops early
    x = _data(n=12, T=10)
    cfg = TrainConfig(max_epochs=50, min_epochs=0, ramp_epochs=0, batch_size=6, early_stopping_patience=2)
    res = train_model(_model(), x[:8], x[8:], cfg, AugmentConfig(), progress=True)
    assert res.stopped_early and len(res.history) == 3
    last = capsys.readouterr().err.split("\r")[-1]
    assert "stopped early at epoch 3 of at most 50" in last and "no improvement" in last
    assert "100%" in last and "3/3" in last
    assert "valid_nll=" in last and "best_smoothed=" in last and "best=" not in last.replace("best_smoothed=", "")
