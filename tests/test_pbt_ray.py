"""The Ray Tune backend of population-based training, against a private local Ray instance
bound to 127.0.0.1."""

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from nwb_autolfads.config import build_config  # noqa: E402
from nwb_autolfads.model.lfads import LFADS  # noqa: E402
from nwb_autolfads.model.observations import Gamma  # noqa: E402
from nwb_autolfads.train.training_data import TrainingData  # noqa: E402
from nwb_autolfads.train.pbt.embedded import train_population  # noqa: E402
from nwb_autolfads.train.pbt.ray_executor import train_population_ray  # noqa: E402


def _toy(population, generations, channels, windows, seed):
    """A tiny population problem: (config, random Gamma-like data, a model factory)."""
    cfg = build_config("smoke", overrides={"pbt.population": population, "pbt.max_generations": generations,
                                           "pbt.generation_steps": 2, "pbt.workers": 2}).resolved(channels)
    x = torch.rand(windows, cfg.windows.window_bins, channels, generator=torch.Generator().manual_seed(seed)) + 0.1
    return cfg, x, lambda: LFADS(channels, cfg.model, Gamma())


def test_ray_backend_runs_the_same_algorithm_as_the_embedded_executor(tmp_path):
    cfg, x, make = _toy(population=3, generations=2, channels=4, windows=40, seed=0)

    torch.manual_seed(1)
    m1, r1 = train_population(make, TrainingData(x[:32], x[32:], Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=3,
                              progress=False)
    seen = []
    torch.manual_seed(1)
    m2, r2 = train_population_ray(make, TrainingData(x[:32], x[32:], Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=3,
                                  rundir=tmp_path, progress=False, on_generation=lambda g, rows: seen.append(g))
    assert not ray.is_initialized()  # the private instance is shut down
    assert seen == [0, 1]
    assert len(r2.pbt_history) == 6 and r2.pbt_summary["backend"] == "ray"
    # same initial draws, tournament, explore and per-member-generation seeds: the same history
    for a, b in zip(r1.pbt_history, r2.pbt_history):
        assert a["parent_member"] == b["parent_member"] and a["lr"] == pytest.approx(b["lr"])
        assert a["metric"] == pytest.approx(b["metric"], rel=1e-5)
    assert r1.pbt_summary["lineage"] == r2.pbt_summary["lineage"]
    assert r2.hyperparameters == pytest.approx(r1.hyperparameters)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p1.detach().numpy(), p2.detach().numpy(), atol=1e-5)


def test_cli_backend_ray_end_to_end(tmp_path):
    import subprocess
    import sys

    from nwb_autolfads.io.results import load_results
    from nwb_autolfads.testing import mock_emg_nwb

    src = mock_emg_nwb(tmp_path / "s.nwb", duration=8.0, rate=1000.0, n_muscles=2, seed=0)
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", str(src), "--preset", "smoke",
                           "--backend", "ray", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ds = load_results(tmp_path / "s_autolfads.nwb")
    assert '"backend": "ray"' in ds.attrs["metrics"]
    assert np.all(np.isfinite(ds.emg_activations.values))


def test_ray_run_resumes_after_a_crash_with_the_uninterrupted_result(tmp_path):
    cfg, x, make = _toy(population=2, generations=3, channels=3, windows=30, seed=5)

    def train(rundir, on_generation=None):
        torch.manual_seed(2)
        return train_population_ray(make, TrainingData(x[:24], x[24:], Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=4,
                                    rundir=rundir, progress=False, on_generation=on_generation)

    m_ref, r_ref = train(tmp_path / "whole")

    def crash(g, rows):
        if g == 1:
            raise RuntimeError("simulated crash after generation 1")

    with pytest.raises(Exception):
        train(tmp_path / "crashed", crash)
    assert (tmp_path / "crashed" / "pbt_state.pt").exists()  # the population's own checkpoint
    seen = []
    m_res, r_res = train(tmp_path / "crashed", lambda g, rows: seen.append(g))
    assert seen == [2]  # only the generation the crash left
    assert [(r["generation"], r["member"], r["parent_member"]) for r in r_res.pbt_history] == \
        [(r["generation"], r["member"], r["parent_member"]) for r in r_ref.pbt_history]
    np.testing.assert_allclose([r["metric"] for r in r_res.pbt_history], [r["metric"] for r in r_ref.pbt_history],
                               rtol=1e-6)
    for p1, p2 in zip(m_ref.parameters(), m_res.parameters()):
        np.testing.assert_allclose(p1.detach().numpy(), p2.detach().numpy(), atol=1e-6)
