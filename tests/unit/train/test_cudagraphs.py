"""CPU-side behaviour of nwb_autolfads.train.cudagraphs (the GPU side is tests/test_cuda.py)."""

import gc

import pytest
import torch

from nwb_autolfads.train import cudagraphs
from nwb_autolfads.config import ModelConfig, TrainConfig, build_config
from nwb_autolfads.errors import ConfigError, TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma


def _model():
    cfg = ModelConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=6, gen_dim=12, factor_dim=3, dropout=0.2)
    return LFADS(5, cfg, Gamma())


def test_on_the_cpu_the_passes_are_the_plain_model_calls():
    model, x = _model().train(), torch.rand(4, 20, 5) + 0.1
    torch.manual_seed(3)
    a = cudagraphs.training_forward(model, x)
    torch.manual_seed(3)
    b = model(x, sample=True)
    assert torch.equal(a.params, b.params) and a.params.requires_grad
    model.eval()
    assert torch.equal(cudagraphs.evaluation_forward(model, x).params, model(x, sample=False).params)
    assert id(model) not in cudagraphs._GRAPHS  # nothing captured or cached on the CPU


def test_a_failed_capture_names_the_way_around_it_and_restores_the_collector():
    assert gc.isenabled()
    with pytest.raises(TrainingError, match=r"training step as a CUDA graph failed \(boom\).*train.cuda_graphs=false"):
        with cudagraphs._capturing("training step"):
            assert not gc.isenabled()  # no collection can free a graph during the capture
            raise RuntimeError("boom\nmore detail")
    assert gc.isenabled()


def test_the_settings():
    assert TrainConfig().cuda_graphs is True
    cfg = build_config(preset="smoke", overrides={"train.cuda_graphs": False, "inference.gpu_batch_size": 1024})
    assert cfg.train.cuda_graphs is False and cfg.inference.gpu_batch_size == 1024
    with pytest.raises(ConfigError, match="train.cuda_graphs"):
        build_config(overrides={"train.cuda_graphs": "maybe"})
    with pytest.raises(ConfigError, match="gpu_batch_size"):
        build_config(overrides={"inference.gpu_batch_size": 0})
