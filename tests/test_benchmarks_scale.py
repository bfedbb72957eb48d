"""benchmarks/scale.py: its quick check runs end to end, and its bookkeeping is right."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "scale.py"


def _module():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_check_prints_and_writes_the_table(tmp_path):
    out, work = tmp_path / "table.md", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick-check", "--out", str(out), "--workdir", str(work)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(work.iterdir()) == []  # data and outputs deleted (no --keep)
    text = out.read_text()
    assert "| case | preset | members/gen | budget | epochs | steps | step ms | read |" in text
    assert text in proc.stdout + "\n"
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["rows"]
    assert [(r["case"], r["preset"]) for r in rows] == [("emg-1min", "smoke"), ("spikes-30u-20min", "smoke")]
    assert report["cases"]["emg-1min"]["duration"] == 6.0  # tiny sizes, not the case's minute
    for r in rows:
        assert "error" not in r, r
        assert list(r["stages"]) == ["read", "preprocess", "train", "infer", "write"]
        seconds = [s["seconds"] for s in r["stages"].values()]
        assert min(seconds) >= 0 and r["stages"]["train"]["seconds"] > 0
        assert sum(seconds) <= r["total_seconds"] * 1.001
        assert all(s["peak_mb"] > 50 for s in r["stages"].values())
        assert r["members"] == 2 and r["steps"] > 0 and r["step_ms"] > 0  # smoke: a population of 2
        # budgets in steps: 2 members x generations of pbt.generation_steps (10) steps; no epochs
        assert r["epochs"] is None and r["steps"] > 0 and r["steps"] % (2 * 10) == 0
        q = r["quality"]
        assert math.isfinite(q["r2_model"]) and q["r2_model"] <= 1.0
        assert 0.2 < q["r2_baseline"] <= 1.0  # the baselines track the truth even on seconds of data
        assert f"| {r['case']} | smoke | 2 |" in text


def test_stage_peaks_come_from_ru_maxrss_where_it_rose_else_from_samples():
    mod = _module()
    stages = {"read": {"seconds": 1.0, "maxrss_mb": 300.0, "children_maxrss_mb": 200.0},
              "train": {"seconds": 2.0, "maxrss_mb": 500.0, "children_maxrss_mb": 650.0},
              "infer": {"seconds": 1.0, "maxrss_mb": 500.0, "children_maxrss_mb": 650.0}}
    samples = [(10.5, 290.0), (11.5, 480.0), (12.5, 470.0), (13.5, 420.0), (13.9, 410.0)]
    rows = mod.stage_rows(stages, 10.0, samples, children_at_call=200.0)
    assert rows["read"]["peak_mb"] == 300.0 and rows["read"]["peak_from"] == "ru_maxrss"
    assert rows["train"]["peak_mb"] == 500.0 and rows["train"]["workers_peak_mb"] == 650.0
    assert rows["infer"]["peak_mb"] == 420.0 and rows["infer"]["peak_from"] == "sampled"  # the high-water mark
    assert rows["infer"]["workers_peak_mb"] is None  # did not rise: not this stage's
    assert rows["read"]["workers_peak_mb"] is None  # a child from before the run
    assert "420 MB~" in mod._stage_cell(rows["infer"]) and "650 MB child" in mod._stage_cell(rows["train"])
    # a stage shorter than the sampling interval, where ru_maxrss did not rise: the nearest sample
    # (found flaky in CI: such a stage had no peak at all)
    short = {**stages, "write": {"seconds": 0.01, "maxrss_mb": 500.0, "children_maxrss_mb": 650.0}}
    rows = mod.stage_rows(short, 10.0, samples, children_at_call=200.0)
    assert rows["write"]["peak_mb"] == 410.0 and rows["write"]["peak_from"] == "sampled"


def _result(train, pbt, history, n_train=100, pbt_summary=None):
    return SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(**train), pbt=SimpleNamespace(**pbt)),
                           training=SimpleNamespace(history=history, seconds=10.0, pbt_summary=pbt_summary),
                           n_train=n_train, n_valid=25)


def test_training_counts_for_epoch_and_step_budgets():
    mod = _module()
    # today's epochs: one model, 7 epochs of ceil(100 / 16) = 7 steps
    c = mod.training_counts(_result({"batch_size": 16, "max_epochs": 150}, {"population": 1},
                                    [{"epoch": e} for e in range(7)]))
    assert (c["members"], c["epochs"], c["steps"], c["budget"]) == (1, 7, 49, "<= 150 epochs")
    assert np.isclose(c["step_ms"], 1e4 / 49)
    # a population: members x generations x generation epochs x steps per epoch
    c = mod.training_counts(_result({"batch_size": 16, "max_epochs": 150}, {"population": 4, "generation_epochs": 3},
                                    [], pbt_summary={"generations": 5}))
    assert (c["members"], c["epochs"], c["steps"]) == (4, 15, 4 * 15 * 7)
    # budgets in steps (issue 19 item 1): the steps the run counted, or generation_steps
    c = mod.training_counts(_result({"batch_size": 16, "max_steps": 2000}, {"population": 1},
                                    [{"step": 100}, {"step": 200}, {"step": 300}]))
    assert (c["epochs"], c["steps"], c["budget"]) == (None, 300, "<= 2000 steps")
    c = mod.training_counts(_result({"batch_size": 16, "max_steps": 2000}, {"population": 8, "generation_steps": 50},
                                    [], pbt_summary={"generations": 3}))
    assert (c["members"], c["steps"]) == (8, 8 * 3 * 50)
