import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, TrainConfig
from nwb_autolfads.errors import OutputError, StateFormatError, TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.train.seeds import SeedTree
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.testing import gamma_windows
from nwb_autolfads.train.loop import CHECKPOINT_FORMAT, TrainResult, WindowSampler, evaluate_nll, load_checkpoint, \
    save_checkpoint, split_train_valid, train_model, validation_subset


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
    cfg = TrainConfig(max_steps=120, min_steps=0, ramp_steps=15, batch_size=10, early_stopping_patience=300,
                      valid_every=3)
    res = train_model(model, TrainingData(x[:30], x[30:], Gamma()), cfg, AugmentConfig(cd_rate=0.3, shift_std=1.0), progress=False)
    after = evaluate_nll(model, x[30:])
    assert len(res.history) == 40 and [h["step"] for h in res.history] == list(range(3, 121, 3))
    assert after < before - 0.05
    assert res.best_valid_nll == pytest.approx(min(h["smoothed_valid_nll"] for h in res.history[5:]))
    assert {"step", "train_nll", "valid_nll", "smoothed_valid_nll", "kl_ic", "kl_co", "l2", "lr"} <= set(res.history[0])


def test_early_stopping():
    torch.manual_seed(0)
    x = _data()
    model = _model()
    # a learning rate too small to change float32 weights: the validation NLL never improves
    cfg = TrainConfig(max_steps=600, min_steps=0, ramp_steps=0, lr=1e-30, lr_min=0.0, batch_size=10,
                      early_stopping_patience=9, smoothing=0.0, valid_every=3)
    res = train_model(model, TrainingData(x[:30], x[30:], Gamma()), cfg, AugmentConfig(), progress=False)
    assert res.stopped_early and len(res.history) == 4  # first check + 9 steps (3 checks) without improvement
    assert res.history[-1]["step"] == 12 and res.best_step == 3


def test_training_is_deterministic_for_a_seed():
    x = _data()
    results = []
    for _ in range(2):
        torch.manual_seed(5)
        model = _model()
        train_model(model, TrainingData(x[:30], x[30:], Gamma()), TrainConfig(max_steps=9, min_steps=0, ramp_steps=3, batch_size=10,
                                                                valid_every=3), AugmentConfig(), progress=False)
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_divergence_is_recovered_then_reported():
    torch.manual_seed(0)
    x = _data()
    bad = x.clone()
    bad[0, 0, 0] = float("nan")  # every step that touches this window diverges
    model = _model()
    cfg = TrainConfig(max_steps=20, min_steps=0, ramp_steps=0, batch_size=40, valid_every=1)
    with pytest.raises(TrainingError, match="diverged"):
        train_model(model, TrainingData(bad[:30], x[30:], Gamma()), cfg, AugmentConfig(), progress=False)
    assert all(torch.all(torch.isfinite(p)) for p in model.parameters())


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path):
    x = _data()
    # 3 steps per pass over the 30 windows, a check every 2 steps: the interruption falls in the middle
    # of a permutation, which the checkpoint carries on
    cfg = TrainConfig(max_steps=16, min_steps=0, ramp_steps=6, batch_size=10, early_stopping_patience=100,
                      valid_every=2)
    aug = AugmentConfig(cd_rate=0.3, shift_std=1.0)

    torch.manual_seed(11)
    straight = _model()
    res_a = train_model(straight, TrainingData(x[:30], x[30:], Gamma()), cfg, aug, progress=False, checkpoint=tmp_path / "a.pt")

    torch.manual_seed(11)
    first = _model()
    ck = tmp_path / "b.pt"
    train_model(first, TrainingData(x[:30], x[30:], Gamma()), TrainConfig(**{**cfg.__dict__, "max_steps": 8}), aug, progress=False,
                checkpoint=ck)  # "killed" after step 8: the checkpoint is what survives
    torch.manual_seed(999)  # a new process: another seed, another initialisation
    resumed = _model()
    res_b = train_model(resumed, TrainingData(x[:30], x[30:], Gamma()), cfg, aug, progress=False, checkpoint=ck)

    assert [h["valid_nll"] for h in res_a.history] == [h["valid_nll"] for h in res_b.history]
    assert res_a.best_step == res_b.best_step and res_b.history[-1]["step"] == 16
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # written atomically


def test_a_finished_checkpoint_does_not_train_again(tmp_path):
    x = _data()
    cfg = TrainConfig(max_steps=6, min_steps=0, ramp_steps=3, batch_size=10, valid_every=3)
    torch.manual_seed(0)
    model = _model()
    train_model(model, TrainingData(x[:30], x[30:], Gamma()), cfg, AugmentConfig(), progress=False, checkpoint=tmp_path / "c.pt")
    before = [p.detach().clone() for p in model.parameters()]
    res = train_model(model, TrainingData(x[:30], x[30:], Gamma()), cfg, AugmentConfig(), progress=False, checkpoint=tmp_path / "c.pt")
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
    cfg = TrainConfig(max_steps=3, min_steps=0, ramp_steps=1, batch_size=30, valid_every=1)
    aug = AugmentConfig(cd_rate=0.0, shift_std=0.0, sv_rate=0.2)
    res = train_model(model, TrainingData(x[:30], x[30:], Gamma()), cfg, aug, progress=False, seed=1)
    tree = SeedTree(1)  # replay the seed tree: the mask and the first permutation have their own streams
    held = (torch.rand(x[:30].shape, generator=tree.torch("sample_validation")) < 0.2).float()
    # every training forward pass saw zeros exactly at the held-out elements of its windows
    first = seen[0]
    perm = torch.randperm(30, generator=tree.torch("batches"))
    assert torch.all(first[held[perm] == 1] == 0)
    assert all("sample_valid_nll" in h and math.isfinite(h["sample_valid_nll"]) for h in res.history)


def test_temporal_shift_applies_one_shift_to_companions():
    from nwb_autolfads.model.augment import TemporalShift

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
    res = train_model(model, TrainingData(x[:30], x[30:], Gamma()), TrainConfig(max_steps=6, min_steps=0, ramp_steps=3, batch_size=10,
                                                                 valid_every=3), AugmentConfig(sv_rate=0.1),
                      progress=False)
    assert all(math.isfinite(h["valid_nll"]) and math.isfinite(h["sample_valid_nll"]) for h in res.history)


def test_progress_bar_marks_early_stopping_and_labels_its_numbers(monkeypatch, capsys):
    import nwb_autolfads.train.loop as training

    monkeypatch.setattr(training, "evaluate_nll", lambda *a, **k: 1.0)  # never improves: stops early
    x = _data(n=12, T=10)
    cfg = TrainConfig(max_steps=100, min_steps=0, ramp_steps=0, batch_size=6, early_stopping_patience=4,
                      valid_every=2)
    res = train_model(_model(), TrainingData(x[:8], x[8:], Gamma()), cfg, AugmentConfig(), progress=True)
    assert res.stopped_early and len(res.history) == 3
    last = capsys.readouterr().err.split("\r")[-1]
    assert "stopped early at step 6 of at most 100" in last and "no improvement" in last and "for 4 steps" in last
    assert "100%" in last and "6/6" in last
    assert "valid_nll=" in last and "best_smoothed=" in last and "best=" not in last.replace("best_smoothed=", "")


def _count_steps(monkeypatch):
    import nwb_autolfads.train.loop as training

    calls = {"n": 0}
    real = training.training_forward

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(training, "training_forward", counted)
    return calls


def test_the_budget_is_steps_whatever_the_number_of_windows(monkeypatch):
    """The same configuration on 10x more windows trains the same number of steps (the budget does
    not grow with the recording), and early stopping ends within one validation interval of it."""
    calls = _count_steps(monkeypatch)
    x = _data(n=440, T=12)
    cfg = TrainConfig(max_steps=24, min_steps=0, ramp_steps=4, batch_size=8, valid_every=6, valid_windows=8)
    counts, checks = [], []
    for n_train in (30, 300):
        torch.manual_seed(0)
        calls["n"] = 0
        res = train_model(_model(), TrainingData(x[:n_train], x[400:], Gamma()), cfg, AugmentConfig(), progress=False)
        counts.append(calls["n"])
        checks.append([h["step"] for h in res.history])
    assert counts == [24, 24] and checks == [[6, 12, 18, 24]] * 2
    # early stopping: a metric that never improves stops both at the same step
    import nwb_autolfads.train.loop as training

    monkeypatch.setattr(training, "evaluate_nll", lambda *a, **k: 1.0)
    stop = TrainConfig(**{**cfg.__dict__, "max_steps": 1000, "early_stopping_patience": 12})
    ends = []
    for n_train in (30, 300):
        res = train_model(_model(), TrainingData(x[:n_train], x[400:], Gamma()), stop, AugmentConfig(), progress=False)
        ends.append(res.history[-1]["step"])
    assert res.stopped_early and ends[0] == ends[1] and abs(ends[0] - (4 + 12)) <= stop.valid_every


def test_validation_uses_a_fixed_bounded_subset_spread_over_the_windows(monkeypatch):
    idx = validation_subset(1000, 64)
    assert idx.size == 64 and idx[0] == 0 and idx[-1] == 999 and len(set(idx.tolist())) == 64
    gaps = idx[1:] - idx[:-1]
    assert gaps.min() >= 15 and gaps.max() <= 17  # evenly spread: never one block of the recording
    assert validation_subset(10, 64).tolist() == list(range(10))

    import nwb_autolfads.train.loop as training

    seen = []
    real = training.evaluate_nll
    monkeypatch.setattr(training, "evaluate_nll", lambda model, x, *a, **k: seen.append(x.clone()) or real(model, x, *a, **k))
    x = _data(n=200, T=12)
    cfg = TrainConfig(max_steps=9, min_steps=0, ramp_steps=0, batch_size=10, valid_every=3, valid_windows=7)
    torch.manual_seed(0)
    train_model(_model(), TrainingData(x[:30], x[30:], Gamma()), cfg, AugmentConfig(), progress=False)
    assert len(seen) == 3 and all(s.shape[0] == 7 for s in seen)
    assert all(torch.equal(s, seen[0]) for s in seen)  # the same windows at every check
    assert torch.equal(seen[0], x[30:][torch.as_tensor(validation_subset(170, 7))])


def test_the_sampler_shows_every_window_once_per_pass_across_steps():
    torch.manual_seed(0)
    sampler = WindowSampler(10, 4)
    batches = [sampler.next().tolist() for _ in range(6)]  # 2 passes: 4 + 4 + 2, 4 + 4 + 2
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(sum(batches[:3], [])) == list(range(10)) and sorted(sum(batches[3:], [])) == list(range(10))
    state = sampler.state()
    again = WindowSampler(10, 4)
    again.load(state)
    rng = torch.get_rng_state()
    a = [sampler.next().tolist() for _ in range(4)]
    torch.set_rng_state(rng)
    assert [again.next().tolist() for _ in range(4)] == a


def test_a_checkpoint_that_cannot_be_written_is_an_output_error(tmp_path):
    """torch.save raises RuntimeError for a folder that does not exist: it must reach the user as the
    one-line OutputError naming the path, like an OSError does, and leave no temporary file."""
    from nwb_autolfads.errors import OutputError
    from nwb_autolfads.train.loop import save_checkpoint

    target = tmp_path / "missing" / "model_state.pt"
    with pytest.raises(OutputError, match="model_state.pt.*folder exists"):
        save_checkpoint(target, {"x": torch.zeros(2)})
    assert not any(tmp_path.rglob("*.tmp"))


def test_train_steps_with_a_generator_draws_only_from_it():
    """With a member's generator every draw (batches, shifts, coordinated dropout, dropout masks,
    posterior noise) comes from it: the same seed gives the same weights whatever torch's global RNG
    holds, and the global RNG is left alone; a sampler drawing from elsewhere is refused."""
    from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
    from nwb_autolfads.config import TrainConfig
    from nwb_autolfads.train.loop import train_steps

    x = _data(23)  # batch 5: the pass's last batch has 3 windows
    cfg = TrainConfig(batch_size=5, ramp_steps=4)

    def run(seed, global_seed):
        torch.manual_seed(0)
        model = _model()
        model.dropout.p = 0.2
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        sums, n = train_steps(model, opt, x, cfg, CoordinatedDropout(0.3), TemporalShift(1.0, 2),
                              WindowSampler(23, 5, generator=gen), 6, generator=gen)
        assert n == 6 and sums is not None
        assert torch.equal(torch.get_rng_state(), before)
        return [p.detach().clone() for p in model.parameters()]

    a, b, c = run(1, 10), run(1, 99), run(2, 10)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    model = _model()
    with pytest.raises(ValueError, match="sampler must draw from the generator"):
        train_steps(model, torch.optim.Adam(model.parameters()), x, cfg, CoordinatedDropout(0.3),
                    TemporalShift(1.0, 2), WindowSampler(23, 5), 1, generator=torch.Generator())


class _RunsCode:
    """An object whose unpickling would run code (touch a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    """load_checkpoint reads tensors and plain types only (weights_only): a run directory's file
    cannot make --resume run code; our own checkpoints load."""
    marker = tmp_path / "ran"
    torch.save({"step": 3, "trap": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(StateFormatError, match="evil.pt.*not loaded"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    save_checkpoint(tmp_path / "ok.pt", {"step": 3, "w": torch.ones(2), "rng": np.random.default_rng(0).bit_generator.state})
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 3


def _old_checkpoints(folder: Path) -> dict[str, bytes]:
    """Checkpoints as versions before :data:`CHECKPOINT_FORMAT` wrote them: a dict without
    ``format`` (and without the newer keys, e.g. the seed tree's ``streams``), and a pickle of an
    object ``weights_only`` refuses (a dataclass); each as its bytes."""
    import io

    out = {}
    for name, state in {"missing keys": {"step": 4, "model": {}, "smoothed": 1.0},
                        "objects": {"step": 4, "result": TrainResult()}}.items():
        buf = io.BytesIO()
        torch.save(state, buf)
        out[name] = buf.getvalue()
    return out


@pytest.mark.parametrize("kind", ["missing keys", "objects"])
def test_resuming_an_old_format_checkpoint_is_one_clear_error_and_keeps_it(tmp_path, kind):
    ck = tmp_path / "run" / "model_state.pt"
    ck.parent.mkdir()
    ck.write_bytes(_old_checkpoints(tmp_path)[kind])
    x = _data()
    with pytest.raises(StateFormatError) as info:
        train_model(_model(), TrainingData(x[:30], x[30:], Gamma()), TrainConfig(max_steps=4, valid_every=2),
                    AugmentConfig(), progress=False, checkpoint=ck)
    message = str(info.value)
    assert "\n" not in message and str(ck.parent) in message and "another version" in message
    assert "--fresh" in message and "nothing is deleted" in message
    assert ck.read_bytes() == _old_checkpoints(tmp_path)[kind]  # kept as it was
    save_checkpoint(ck, {"step": 4})
    assert load_checkpoint(ck)["format"] == CHECKPOINT_FORMAT  # every checkpoint now says its format
