"""The model, training, inference and a whole run on a CUDA GPU.

Skipped where torch sees no GPU (CI has none); run on a GPU machine with
``python -m pytest -q tests/test_cuda.py``. The CPU is the reference: the same weights must give
the same outputs and gradients on both devices (float32; cuDNN may use TF32 in its RNNs, hence
the 1e-3 tolerances), a checkpoint written while training on the GPU must resume on the CPU,
and ``run(..., device="cuda")`` must write the same kind of result as on the CPU.
"""

import copy

import numpy as np
import pytest
import torch

from nwb_autolfads.config import AugmentConfig, InferenceConfig, ModelConfig, TrainConfig
from nwb_autolfads.model.inference import infer
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma, Poisson
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.testing import gamma_windows
from nwb_autolfads.train.loop import load_checkpoint, train_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")

CUDA = torch.device("cuda")


def _model(obs=None, C=5, **kw):
    cfg = ModelConfig(**{"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 24,
                         "factor_dim": 4, "dropout": 0.0, **kw})
    return LFADS(C, cfg, obs or Gamma())


def _gamma_data(n=40, T=30, C=5, seed=0):
    return gamma_windows(n, T, C, seed)


def _rel(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("obs", [Gamma(), Poisson()], ids=["gamma", "poisson"])
def test_forward_and_gradients_match_the_cpu(obs):
    torch.manual_seed(0)
    cpu = _model(obs)
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = _gamma_data() if isinstance(obs, Gamma) else torch.poisson(torch.full((40, 30, 5), 0.7))
    out_c, out_g = cpu(x, sample=False), gpu(x.to(CUDA), sample=False)
    assert out_g.params.device.type == "cuda"
    for name in ("params", "factors", "inputs", "ic_mean", "kl_ic", "kl_co"):
        assert _rel(getattr(out_g, name), getattr(out_c, name)) < 1e-3, name
    loss_c = obs.nll(out_c.params, x).mean() + out_c.kl_ic.mean() + out_c.kl_co.mean()
    loss_g = obs.nll(out_g.params, x.to(CUDA)).mean() + out_g.kl_ic.mean() + out_g.kl_co.mean()
    loss_c.backward(), loss_g.backward()
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert pg.grad is not None and torch.isfinite(pg.grad).all(), name
        assert _rel(pg.grad, pc.grad) < 2e-3, name


def test_sampled_forward_with_many_samples_on_the_gpu():
    torch.manual_seed(0)
    model = _model().to(CUDA)
    out = model(_gamma_data(n=6).to(CUDA), sample=True, n_samples=7)
    assert out.params.shape == (42, 30, 5, 2) and torch.isfinite(out.params).all()


def test_training_on_the_gpu_lowers_the_nll_and_resumes_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    x = _gamma_data(n=60)
    model = _model().to(CUDA)
    model.init_readout_bias(x[:45].mean(dim=(0, 1)).to(CUDA))
    cfg = TrainConfig(max_steps=90, min_steps=0, ramp_steps=15, batch_size=15, early_stopping_patience=300,
                      valid_every=3)
    aug = AugmentConfig(cd_rate=0.3, shift_std=1.0)
    ck = tmp_path / "gpu.pt"
    res = train_model(model, TrainingData(x[:45].to(CUDA), x[45:].to(CUDA), Gamma()), cfg, aug, progress=False, checkpoint=ck)
    assert len(res.history) == 30
    assert res.history[-1]["valid_nll"] < res.history[0]["valid_nll"] - 0.05
    assert all(p.device.type == "cuda" for p in model.parameters())
    # the checkpoint holds CPU tensors (and the CUDA RNG state) and continues on a CPU-only machine
    state = load_checkpoint(ck)
    assert state["step"] == 90 and "cuda" in state["rng"]
    cpu_model = _model()
    longer = TrainConfig(**{**cfg.__dict__, "max_steps": 99})
    res_cpu = train_model(cpu_model, TrainingData(x[:45], x[45:], Gamma()), longer, aug, progress=False, checkpoint=ck)
    assert len(res_cpu.history) == 33 and res_cpu.history[:30] == res.history
    # and the GPU model's inference agrees with the same weights on the CPU
    cpu_copy = _model()
    cpu_copy.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    mean_cfg = InferenceConfig(mode="mean")
    a, b = infer(model, x.to(CUDA), mean_cfg), infer(cpu_copy, x, mean_cfg)
    np.testing.assert_allclose(a.mean, b.mean, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(a.factors, b.factors, rtol=2e-3, atol=1e-4)
    sampled = infer(model, x.to(CUDA), InferenceConfig(mode="sample", n_samples=20, batch_size=100))
    assert sampled.mean.shape == (60, 30, 5) and np.isfinite(sampled.mean).all()
    assert np.corrcoef(sampled.mean.ravel(), a.mean.ravel())[0, 1] > 0.95


def test_run_on_the_gpu_writes_the_result(emg_copy):
    import nwb_autolfads

    res = nwb_autolfads.run(emg_copy, preset="smoke", device="cuda", progress=False)
    assert res.device.startswith("cuda")
    ds = nwb_autolfads.load_results(res.output)
    act = ds["emg_activations"].values
    assert act.shape == (2000, 6) and np.isfinite(act).all() and (act > 0).all()


def test_population_training_on_the_gpu(emg_copy, tmp_path):
    import nwb_autolfads

    res = nwb_autolfads.run(emg_copy, tmp_path / "pbt.nwb", preset="smoke", device="cuda", progress=False,
                            overrides={"pbt.population": 3, "pbt.max_generations": 2, "pbt.generation_steps": 6})
    assert res.device.startswith("cuda") and res.training.pbt_summary["generations"] == 2
    assert np.isfinite(nwb_autolfads.load_results(res.output)["emg_activations"].values).all()


def test_graphed_training_forward_matches_the_eager_pass():
    from nwb_autolfads.train.cudagraphs import training_forward

    torch.manual_seed(0)
    model = _model(C=5, dropout=0.0).to(CUDA).train()
    twin = copy.deepcopy(model)
    obs = Gamma()
    for seed in (1, 2):  # second call: a replay on new data
        x = _gamma_data(n=16, seed=seed).to(CUDA)
        out_g = training_forward(model, x, sample=False)
        out_e = twin(x, sample=False)
        for name in ("params", "factors", "inputs", "kl_ic", "kl_co"):
            assert _rel(getattr(out_g, name), getattr(out_e, name)) < 1e-5, name
        for m, out in ((model, out_g), (twin, out_e)):
            m.zero_grad(set_to_none=True)
            (obs.nll(out.params, x).mean() + out.kl_co.mean()).backward()
        for (name, pg), (_, pe) in zip(model.named_parameters(), twin.named_parameters()):
            assert _rel(pg.grad, pe.grad) < 1e-4, name


def test_graph_replays_draw_fresh_noise_and_follow_the_seed():
    from nwb_autolfads.train import cudagraphs

    torch.manual_seed(0)
    model = _model(dropout=0.2).to(CUDA).train()
    x = _gamma_data(n=16).to(CUDA)
    a = cudagraphs.training_forward(model, x).params.clone()
    b = cudagraphs.training_forward(model, x).params.clone()
    assert not torch.equal(a, b)  # the sampling noise and dropout masks are redrawn on every replay
    torch.manual_seed(5)
    c = cudagraphs.training_forward(model, x).params.clone()
    torch.manual_seed(5)
    d = cudagraphs.training_forward(model, x).params.clone()
    assert torch.equal(c, d)
    model.dropout.p = 0.1  # PBT changes the dropout rate: a new capture, the old one freed
    cudagraphs.training_forward(model, x)
    assert {k[3] for k in cudagraphs._GRAPHS[id(model)]} == {0.1}
    key = id(model)
    del model
    import gc

    gc.collect()
    assert key not in cudagraphs._GRAPHS


def test_training_with_graphs_learns_like_eager_training():
    x = _gamma_data(n=60).to(CUDA)
    final = {}
    for graphs in (True, False):
        torch.manual_seed(0)
        model = _model().to(CUDA)
        model.init_readout_bias(x[:45].mean(dim=(0, 1)))
        cfg = TrainConfig(max_steps=90, min_steps=0, ramp_steps=15, batch_size=16, early_stopping_patience=300,
                          valid_every=3, cuda_graphs=graphs)  # 45 windows: batches of 16, 16 and 13 (two captured shapes)
        res = train_model(model, TrainingData(x[:45], x[45:], Gamma()), cfg, AugmentConfig(cd_rate=0.3, shift_std=1.0), progress=False)
        first, final[graphs] = res.history[0]["valid_nll"], res.history[-1]["valid_nll"]
        assert final[graphs] < first - 0.05, graphs
    assert abs(final[True] - final[False]) < 0.05, final


def test_graphed_validation_pass_matches_the_eager_pass():
    from nwb_autolfads.train.cudagraphs import evaluation_forward

    torch.manual_seed(0)
    model = _model(dropout=0.3).to(CUDA).eval()
    for seed in (1, 2, 3):
        x = _gamma_data(n=12, seed=seed).to(CUDA)
        first = evaluation_forward(model, x)
        with torch.no_grad():
            eager = model(x, sample=False)
        for name in ("params", "factors", "ic_mean", "kl_ic"):
            assert _rel(getattr(first, name), getattr(eager, name)) < 1e-5, name
    kept = first.params.clone()
    evaluation_forward(model, _gamma_data(n=12, seed=9).to(CUDA))
    assert torch.equal(first.params, kept)  # outputs are copies, not the graph's buffers
    with torch.no_grad():
        model.readout.bias.add_(1.0)  # the graph reads the parameters in place: updates are seen
    assert _rel(evaluation_forward(model, x).params, model(x, sample=False).params.detach()) < 1e-5


def test_capture_survives_dead_graphs_collected_mid_capture():
    """Graphs of dead models are cyclic garbage; a collection during another model's capture
    must not destroy them (found on a GPU: a later capture failed and the CUDA RNG broke)."""
    import gc

    from nwb_autolfads.train import cudagraphs

    x = _gamma_data(n=8).to(CUDA)
    for _ in range(3):  # models whose graphs die and become garbage
        m = _model().to(CUDA).train()
        cudagraphs.training_forward(m, x).params.sum().backward()
        cudagraphs.evaluation_forward(m.eval(), x)
        del m
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # collect at nearly every allocation, captures included
    try:
        model = _model().to(CUDA).train()
        out = cudagraphs.training_forward(model, x)
        out.params.sum().backward()
        cudagraphs.evaluation_forward(model.eval(), x)
        torch.randn(3, device=CUDA)  # the CUDA generator still works outside the capture
    finally:
        gc.set_threshold(*threshold)
    assert torch.isfinite(out.params).all()
