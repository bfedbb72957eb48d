"""The seed tree (nwb_autolfads.train.seeds): one generator per purpose, from the run's seed."""

import pytest
import torch

from nwb_autolfads.config import build_config
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.seeds import PURPOSES, SeedTree
from nwb_autolfads.train.training_data import TrainingData


def test_every_purpose_and_key_has_its_own_reproducible_stream():
    tree = SeedTree(11)
    draws = {(p, k): torch.rand(4, generator=tree.torch(p, k)) for p in PURPOSES
             for k in (0, 1)}
    values = [tuple(v.tolist()) for v in draws.values()]
    assert len(set(values)) == len(values)  # no two purposes or keys share a stream
    again = torch.rand(4, generator=SeedTree(11).torch("batches", 1))
    assert torch.equal(again, draws[("batches", 1)])
    assert not torch.equal(torch.rand(4, generator=SeedTree(12).torch("batches", 1)), again)
    assert SeedTree(11).numpy("pbt").integers(1 << 30) == SeedTree(11).numpy("pbt").integers(1 << 30)
    with pytest.raises(KeyError, match="unknown seed purpose 'typo'"):
        tree.torch("typo")


def test_initialising_draws_from_the_init_stream_and_restores_the_global_generator():
    cfg = build_config("smoke").resolved(3)
    tree = SeedTree(5)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with tree.initialising(2):
        a = LFADS(3, cfg.model, Gamma())
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is untouched
    torch.manual_seed(123)  # whatever was drawn before does not matter
    with tree.initialising(2):
        b = LFADS(3, cfg.model, Gamma())
    with tree.initialising(3):
        c = LFADS(3, cfg.model, Gamma())
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_a_population_does_not_depend_on_the_global_generators():
    """Same seed -> bit-identical population, whatever torch's and numpy's global generators hold."""
    import numpy as np

    cfg = build_config("smoke", overrides={"pbt.population": 3, "pbt.max_generations": 2, "pbt.generation_steps": 2,
                                           "train.valid_every": 2, "pbt.execution": "sequential"}).resolved(3)
    x = torch.rand((20, 20, 3), generator=torch.Generator().manual_seed(0)) + 0.1
    data = TrainingData(x[:16], x[16:], Gamma())
    runs = []
    for global_seed in (1, 999):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        runs.append(train_population(lambda: LFADS(3, cfg.model, Gamma()), data, cfg.model, cfg.train, cfg.augment,
                                     cfg.pbt, seed=7, progress=False))
    (m1, r1), (m2, r2) = runs
    assert r1.pbt_history == r2.pbt_history and r1.history == r2.history
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
