import math
import sys

import numpy as np
import pytest
import torch

from nwb_autolfads.train.pbt import embedded as pbt
from nwb_autolfads.train.pbt import member as member_mod
from nwb_autolfads.config import PBTConfig, SearchRange, build_config
from nwb_autolfads.errors import StateFormatError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.train.loop import evaluate_nll
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.pbt.member import Member
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.pbt.population import explore, initial_hyperparameters, lineage, should_stop, tournament

RANGES = PBTConfig().ranges()
DEFAULTS = {"lr": 4e-3, "dropout": 0.1, "cd_rate": 0.3, "l2_gen_scale": 1e-3, "l2_con_scale": 1e-3,
            "kl_co_scale": 1e-4, "kl_ic_scale": 1e-4}


def test_initial_population_member_0_is_the_defaults_and_all_are_in_bounds():
    members = initial_hyperparameters(RANGES, {**DEFAULTS, "kl_co_scale": 1.0}, 20, np.random.default_rng(0))
    assert members[0] == {**DEFAULTS, "kl_co_scale": 1e-4}  # clipped to its upper bound
    assert all(m["lr"] == 4e-3 for m in members)  # every member starts at the default learning rate
    for m in members:
        for k, r in RANGES.items():
            assert r.low <= m[k] <= r.high
    # log ranges are sampled log-uniformly: about half the draws are below the geometric mean
    kl = np.array([m["kl_ic_scale"] for m in initial_hyperparameters(RANGES, DEFAULTS, 2000,
                                                                     np.random.default_rng(1))[1:]])
    assert 0.45 < np.mean(kl < np.sqrt(1e-6 * 1e-3)) < 0.55


def test_explore_stays_in_bounds_and_within_the_weight():
    rng = np.random.default_rng(0)
    for _ in range(500):
        hp = {k: float(np.exp(rng.uniform(np.log(r.low), np.log(r.high)))) if r.log else float(rng.uniform(r.low,
                                                                                                           r.high))
              for k, r in RANGES.items()}
        new = explore(hp, RANGES, rng)
        for k, r in RANGES.items():
            assert r.low <= new[k] <= r.high
            if hp[k] > 0:
                assert (1 - r.weight) - 1e-12 <= new[k] / hp[k] <= (1 + r.weight) + 1e-12
    # at a bound the factor is redrawn until inside (never clipped to the bound itself)
    at_top = explore({**DEFAULTS, "lr": 5e-3}, RANGES, np.random.default_rng(3))
    assert at_top["lr"] < 5e-3
    # the factors spread over [1 - w, 1 + w]
    factors = [explore({"dropout": 0.3}, {"dropout": SearchRange(0.0, 1.0, weight=0.3)}, rng)["dropout"] / 0.3
               for _ in range(2000)]
    assert min(factors) < 0.72 and max(factors) > 1.28


def test_tournament():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = list(rng.normal(size=6))
        parents = tournament(scores, rng)
        best = int(np.argmin(scores))
        assert parents[best] == best  # the best member never copies
        for k, p in enumerate(parents):
            assert p == k or scores[p] < scores[k]  # only ever copies a better member
    # the worse of two always copies the better one; a NaN member copies anyone finite
    assert tournament([2.0, 1.0], rng) == [1, 1]
    for _ in range(20):
        parents = tournament([math.nan, 5.0, 3.0], rng)
        assert parents[0] in (1, 2)
    assert tournament([1.0], rng) == [0]


def test_stopping_rule():
    assert not should_stop([1.0, 0.9, 0.8], ratio=0.0005, window=4)  # too few generations
    assert not should_stop([1.0, 0.9, 0.8, 0.7, 0.6], ratio=0.0005, window=4)
    assert should_stop([1.0, 0.9, 0.9, 0.9, 0.9, 0.89999], ratio=0.0005, window=4)
    assert should_stop([-2.0, -2.0, -2.0, -2.0, -2.0], ratio=0.0005, window=4)  # negative NLLs too
    assert not should_stop([-2.0, -2.0, -2.0, -2.0, -2.1], ratio=0.0005, window=4)


def test_lineage_follows_the_copies():
    rows = [{"generation": 0, "member": 0, "parent_member": -1}, {"generation": 0, "member": 1, "parent_member": 0},
            {"generation": 1, "member": 0, "parent_member": 1}, {"generation": 1, "member": 1, "parent_member": -1},
            {"generation": 2, "member": 0, "parent_member": -1}, {"generation": 2, "member": 1, "parent_member": -1}]
    assert lineage(rows, member=0, generation=2) == [{"generation": 0, "member": 0}, {"generation": 1, "member": 1},
                                                    {"generation": 2, "member": 0}]


def _setup(population=3, generations=3, steps=4, seed=0):
    cfg = build_config("smoke", overrides={"pbt.population": population, "pbt.max_generations": generations,
                                           "pbt.generation_steps": steps, "train.valid_every": 2}).resolved(4)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((30, 20, 4), generator=g) + 0.1

    def make():
        return LFADS(4, cfg.model, Gamma())
    return cfg, make, x[:24], x[24:]


def _run(cfg, make, tx, vx, rundir=None, on_generation=None):
    torch.manual_seed(cfg.seed)
    return train_population(make, TrainingData(tx, vx, Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=cfg.seed, rundir=rundir,
                            progress=False, on_generation=on_generation)


def test_population_history_and_winner():
    cfg, make, tx, vx = _setup()
    model, result = _run(cfg, make, tx, vx)
    rows = result.pbt_history
    assert len(rows) == 9 and [r["generation"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert result.best_valid_nll == min(r["metric"] for r in rows)
    winner = [r for r in rows if r["metric"] == result.best_valid_nll][0]
    assert result.hyperparameters == {k: winner[k] for k in RANGES}
    assert len(result.history) == 6  # the winner's lineage, one row per check (2 per generation of 4 steps)
    assert [h["step"] for h in result.history] == [2, 4, 6, 8, 10, 12]
    assert [r["steps"] for r in rows] == [4] * 3 + [8] * 3 + [12] * 3
    assert result.pbt_summary["lineage"][-1] == {"generation": winner["generation"], "member": winner["member"]}
    # members that copied got explored hyperparameters (different from the parent's)
    for r in rows[:-3]:
        if r["parent_member"] >= 0:
            nxt = next(x for x in rows if x["generation"] == r["generation"] + 1 and x["member"] == r["member"])
            parent = next(x for x in rows if x["generation"] == r["generation"] and x["member"] == r["parent_member"])
            assert nxt["lr"] != parent["lr"]
    assert math.isclose(float(evaluate_nll(model, vx)), result.history[-1]["valid_nll"], rel_tol=1e-5)


def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path):
    cfg, make, tx, vx = _setup()
    full_model, full = _run(cfg, make, tx, vx, rundir=tmp_path / "a")

    def crash(g, rows):
        if g == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(cfg, make, tx, vx, rundir=tmp_path / "b", on_generation=crash)
    torch.manual_seed(1234)  # whatever happened to the RNG since, resume restores it
    resumed_model, resumed = _run(cfg, make, tx, vx, rundir=tmp_path / "b")
    assert resumed.pbt_history == full.pbt_history
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k


@pytest.mark.parametrize("backend", ["embedded", "ray"])
@pytest.mark.parametrize("kind", ["missing keys", "objects"])
def test_resuming_an_old_format_population_checkpoint_is_one_clear_error_and_keeps_it(tmp_path, backend, kind):
    """pbt_state.pt as versions before CHECKPOINT_FORMAT wrote it: refused before anything trains
    (and before Ray starts), with a message that names the directory and the fix; the file is kept."""
    import io

    from nwb_autolfads.train.loop import TrainResult
    from nwb_autolfads.train.pbt.population import CHECKPOINT

    cfg, make, tx, vx = _setup()
    old = {"missing keys": {"fingerprint": "0" * 64, "generation": 2, "members": []},
           "objects": {"fingerprint": "0" * 64, "result": TrainResult()}}[kind]
    buf = io.BytesIO()
    torch.save(old, buf)
    ck = tmp_path / CHECKPOINT
    ck.write_bytes(buf.getvalue())
    if backend == "ray":
        pytest.importorskip("ray")
        from nwb_autolfads.train.pbt.ray_executor import train_population_ray as trainer
    else:
        trainer = train_population
    with pytest.raises(StateFormatError) as info:
        trainer(make, TrainingData(tx, vx, Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=cfg.seed,
                rundir=tmp_path, progress=False)
    message = str(info.value)
    assert str(tmp_path) in message and "another version" in message and "--fresh" in message
    assert ck.read_bytes() == buf.getvalue()


def test_a_diverged_member_is_replaced(monkeypatch):
    cfg, make, tx, vx = _setup(population=3, generations=2)
    cfg = cfg.updated({"pbt.execution": "sequential"})  # train_steps, patched below, trains each member
    calls = {"n": 0}
    real = member_mod.train_steps

    def flaky(model, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # member 1, its first 2 steps: NaN loss
            return None, 1
        return real(model, *args, **kwargs)

    monkeypatch.setattr(member_mod, "train_steps", flaky)
    _, result = _run(cfg, make, tx, vx)
    first = {r["member"]: r for r in result.pbt_history if r["generation"] == 0}
    assert math.isnan(first[1]["metric"]) and first[1]["parent_member"] in (0, 2)
    assert all(math.isfinite(r["metric"]) for r in result.pbt_history if r["generation"] == 1)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_worker_processes_give_the_same_result_as_one_process(start, monkeypatch):
    if start == "fork" and (not sys.platform.startswith("linux") or torch.cuda.is_initialized()):
        pytest.skip("fork is used on Linux only, and only before CUDA was used")
    monkeypatch.setattr(pbt, "start_method", lambda: start)  # spawn: other systems, or after CUDA was used
    cfg, make, tx, vx = _setup(population=3, generations=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # workers use one thread each; with more, float sums may differ in the last bits
    try:
        one_model, one = _run(cfg.updated({"pbt.execution": "sequential"}), make, tx, vx)
        two_model, two = _run(cfg.updated({"pbt.execution": "processes", "pbt.workers": 2}), make, tx, vx)
    finally:
        torch.set_num_threads(threads)
    assert two.execution.startswith("processes: 2 worker") and one.execution.startswith("sequential")
    assert two.pbt_history == one.pbt_history
    for k, v in one_model.state_dict().items():
        assert torch.equal(v, two_model.state_dict()[k]), k


@pytest.mark.parametrize("executor", [pbt._Executor, pbt._SplitExecutor])
def test_workers_are_spawned_without_the_nwb_stack(executor):
    """Workers start fresh (spawn): they import torch and the training modules, not pynwb/hdmf/h5py
    (which this test process has loaded), and no copy of what the parent read; also after
    training a stacked block (stacked-processes)."""
    import pynwb  # noqa: F401  (the parent has the NWB stack, as a run has)

    from nwb_autolfads.train.resources import nwb_modules_loaded

    assert pbt.start_method() == "spawn"
    cfg, make, tx, vx = _setup(population=2, generations=1)
    model = make()
    ex = executor(2, TrainingData(tx, vx, model.observation), cfg.model, cfg.train, cfg.augment, threads=1)
    try:
        if executor is pbt._SplitExecutor:
            members = [Member(m, torch.optim.Adam(m.parameters(), lr=1e-3), dict(DEFAULTS)) for m in (model, make())]
            ex.generation(members, 2, 0, 0)  # a block of one member in each worker
            assert [m.steps for m in members] == [2, 2] and all(math.isfinite(m.smoothed) for m in members)
        assert ex.pool.submit(nwb_modules_loaded).result(timeout=120) == []
        assert ex.pool.submit(torch.get_num_threads).result(timeout=120) == 1
    finally:
        ex.close()


_UNGUARDED_SCRIPT = """
import pathlib, sys
import pynwb  # noqa: F401  (a user's script has read its file)
import torch
from nwb_autolfads.config import build_config
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.training_data import TrainingData
with open(sys.argv[1], "a") as f:
    f.write("ran\\n")
cfg = build_config("smoke", overrides={"pbt.population": 2, "pbt.max_generations": 1, "pbt.generation_steps": 1,
                                       "pbt.workers": 2}).resolved(3)
x = torch.rand((12, 20, 3)) + 0.1
train_population(lambda: LFADS(3, cfg.model, Gamma()), TrainingData(x[:10], x[10:], Gamma()), cfg.model, cfg.train, cfg.augment, cfg.pbt,
                 progress=False)
print("done")
"""


def test_workers_do_not_rerun_a_script_without_a_main_guard(tmp_path):
    """A script calling the training at top level (no ``if __name__ == "__main__":``) runs once:
    the spawned workers do not import it."""
    import os
    import subprocess
    from pathlib import Path

    script, marker = tmp_path / "analysis.py", tmp_path / "runs.txt"
    script.write_text(_UNGUARDED_SCRIPT)
    src = str(Path(__file__).resolve().parents[3] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script), str(marker)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["done"] and marker.read_text() == "ran\n"


@pytest.mark.parametrize("execution", ["sequential", "stacked"])
def test_a_generation_is_generation_steps_steps_whatever_the_number_of_windows(execution, monkeypatch):
    """Every member trains pbt.generation_steps steps per generation (validated every train.valid_every
    steps and at the generation's end), on 24 or on 240 training windows alike."""
    calls = {"n": 0}
    real = member_mod.train_steps

    def counted(*a, **k):
        sums, n = real(*a, **k)
        calls["n"] += n
        return sums, n

    monkeypatch.setattr(member_mod, "train_steps", counted)
    cfg = build_config("smoke", overrides={"pbt.population": 2, "pbt.max_generations": 2, "pbt.generation_steps": 5,
                                           "train.valid_every": 2, "pbt.execution": execution}).resolved(4)
    x = torch.rand((264, 20, 4), generator=torch.Generator().manual_seed(0)) + 0.1
    counts = []
    for n_train in (24, 240):
        calls["n"] = 0
        _, result = _run(cfg, lambda: LFADS(4, cfg.model, Gamma()), x[:n_train], x[240:])
        counts.append(calls["n"])
        assert result.execution.startswith(execution)
        assert [r["steps"] for r in result.pbt_history] == [5, 5, 10, 10]
        # checks at steps 2, 4 and the generation's end (5), then 6, 8, 10 (its end)
        assert [h["step"] for h in result.history] == [2, 4, 5, 6, 8, 10]
    assert counts == ([2 * 2 * 5] * 2 if execution == "sequential" else [0, 0])  # stacked: no train_steps


def _rows_close(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if isinstance(ra[key], float) and not float(ra[key]).is_integer():
                assert rb[key] == pytest.approx(ra[key], rel=rel), key
            else:
                assert rb[key] == ra[key], key


def test_every_execution_mode_gives_the_same_population():
    """The same run (4 members with different hyperparameters, 2 generations with exploit/explore)
    gives the same winner, hyperparameters, metrics, histories and weights whether the members
    train stacked, one after another, in 2 spawned worker processes, or stacked in 2 worker
    processes of 2 members each: each member-generation draws from its own stream, whatever the
    machine's automatic choice (float64: to rounding)."""
    cfg = build_config("smoke", overrides={"pbt.population": 4, "pbt.max_generations": 2, "pbt.generation_steps": 3,
                                           "train.valid_every": 2, "train.ramp_steps": 4}).resolved(3)
    x = (torch.rand((22, 20, 3), generator=torch.Generator().manual_seed(3)) + 0.1).double()
    tx, vx = x[:16], x[16:]

    def make():
        return LFADS(3, cfg.model, Gamma()).double()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {}
        for mode, workers in (("stacked", 1), ("sequential", 1), ("processes", 2), ("stacked-processes", 2)):
            results[mode] = _run(cfg.updated({"pbt.execution": mode, "pbt.workers": workers}), make, tx, vx)
    finally:
        torch.set_num_threads(threads)
    ref_model, ref = results["sequential"]
    assert any(r["parent_member"] >= 0 for r in ref.pbt_history)  # exploit/explore happened
    assert len({r["cd_rate"] for r in ref.pbt_history if r["generation"] == 0}) == 4  # different members
    assert results["stacked-processes"][1].execution.startswith("stacked-processes: 2 worker processes")
    for mode in ("stacked", "processes", "stacked-processes"):
        model, res = results[mode]
        assert res.execution.startswith(mode + ":")
        assert res.pbt_summary["best_member"] == ref.pbt_summary["best_member"]
        assert res.pbt_summary["lineage"] == ref.pbt_summary["lineage"]
        assert res.hyperparameters == pytest.approx(ref.hyperparameters, rel=1e-12)
        assert res.best_valid_nll == pytest.approx(ref.best_valid_nll, rel=1e-10)
        _rows_close(ref.pbt_history, res.pbt_history, 1e-10)
        _rows_close(ref.history, res.history, 1e-10)
        for k, v in ref_model.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-10, atol=1e-12)


def test_member_blocks_are_fixed_and_contiguous():
    assert pbt.member_blocks(20, 2) == [range(0, 10), range(10, 20)]
    assert pbt.member_blocks(5, 2) == [range(0, 2), range(2, 5)]
    assert pbt.member_blocks(2, 4) == [range(0, 1), range(1, 2)]  # never an empty block
    assert pbt.member_blocks(7, 1) == [range(0, 7)]


def test_a_split_population_does_not_depend_on_the_number_of_workers():
    """stacked-processes: the same generation (5 members, different hyperparameters, a validation
    check inside it) trained as 1, 2 or 3 blocks (members 0-4; 0-1 | 2-4; 0 | 1-2 | 3-4) gives the
    same weights, Adam states, metrics and histories: a block's members draw from their own
    streams by population index (float64: to rounding). 1 block is the stacked executor."""
    from nwb_autolfads.train.stacked import StackedExecutor

    cfg = build_config("smoke", overrides={"pbt.population": 5, "train.valid_every": 2}).resolved(3)
    x = (torch.rand((22, 20, 3), generator=torch.Generator().manual_seed(5)) + 0.1).double()
    tx, vx = x[:16], x[16:]
    rng = np.random.default_rng(1)
    hps = initial_hyperparameters(cfg.pbt.ranges(), {**DEFAULTS, "lr": 4e-3}, 5, rng)

    def members():
        out = []
        for k, hp in enumerate(hps):
            torch.manual_seed(k)
            model = LFADS(3, cfg.model, Gamma()).double()
            m = Member(model, torch.optim.Adam(model.parameters(), lr=hp["lr"]), dict(hp))
            m.apply()
            out.append(m)
        return out

    one = members()
    StackedExecutor(TrainingData(tx, vx, Gamma()), cfg.model, cfg.train, cfg.augment).generation(one, 3, 1, 7)
    for blocks in (2, 3):
        split = members()
        ex = pbt._SplitExecutor(blocks, TrainingData(tx, vx, Gamma()), cfg.model, cfg.train, cfg.augment, in_process=True)
        ex.generation(split, 3, 1, 7)
        ex.close()
        for a, b in zip(one, split):
            assert b.steps == a.steps == 3 and b.smoothed == pytest.approx(a.smoothed, rel=1e-12)
            _rows_close(a.history, b.history, 1e-12)
            for k, v in a.model.state_dict().items():
                torch.testing.assert_close(b.model.state_dict()[k], v, rtol=1e-12, atol=1e-14)
            sa, sb = a.opt.state_dict()["state"], b.opt.state_dict()["state"]
            assert sa.keys() == sb.keys()
            for i in sa:
                torch.testing.assert_close(sb[i]["exp_avg_sq"], sa[i]["exp_avg_sq"], rtol=1e-12, atol=1e-20)


def test_members_that_copy_one_parent_do_not_share_its_optimizer_state():
    """Exploit loads one copy of a parent's state into every member that copies it: each must get its
    own Adam moments (torch's load_state_dict keeps the given tensors), or training one member moves
    the others' (found by comparing execution modes: sequential drifted from stacked/processes)."""
    cfg = build_config("smoke").resolved(3)
    hp = {"lr": 1e-2, "dropout": 0.0, "cd_rate": 0.1, "l2_gen_scale": 1e-3, "l2_con_scale": 1e-3,
          "kl_co_scale": 1e-5, "kl_ic_scale": 1e-5}

    def member():
        model = LFADS(3, cfg.model, Gamma())
        return Member(model, torch.optim.Adam(model.parameters(), lr=hp["lr"]), dict(hp))

    def step(m):
        m.opt.zero_grad()
        sum((p ** 2).sum() for p in m.model.parameters()).backward()
        m.opt.step()

    parent, a, b = member(), member(), member()
    step(parent)
    source = parent.state()  # one copy, loaded by both (as pbt's exploit does)
    a.load(source)
    b.load(source)
    moments = [s["exp_avg"].clone() for s in b.opt.state.values()]
    step(a)
    assert all(torch.equal(s["exp_avg"], m0) for s, m0 in zip(b.opt.state.values(), moments))
    assert not all(torch.equal(s["exp_avg"], m0) for s, m0 in zip(a.opt.state.values(), moments))
