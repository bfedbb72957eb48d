"""Everyday use of the command line (issue 16): never lose work, never mislabel a run, clear next steps."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from nwb_autolfads.cli import main
from nwb_autolfads.testing import mock_emg_nwb

SMOKE = ["--preset", "smoke", "-q", "--set", "windows.window_bins=8", "--set", "windows.overlap_bins=2"]


@pytest.fixture()
def tiny(tmp_path):
    """3 s of raw 2-muscle EMG: a smoke run on it takes a few seconds."""
    return mock_emg_nwb(tmp_path / "tiny.nwb", duration=3.0, rate=1000.0, n_muscles=2, seed=3)


def _err_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("nwb-autolfads: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- 1. the example's result is never replaced silently
def test_example_refuses_to_replace_an_existing_result(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mock_emg_nwb(tmp_path / "autolfads_example.nwb", duration=3.0, rate=1000.0, n_muscles=2)
    done = tmp_path / "autolfads_example_autolfads.nwb"
    done.write_bytes(b"an hours-long result")
    assert main(["run", "--example", "--preset", "smoke", "-q"]) == 2
    assert "--overwrite" in _err_line(capsys)
    assert done.read_bytes() == b"an hours-long result"


# ---------------------------------------------------------------- 2. an interrupted run's state is never deleted
def _interrupted_rundir(tiny, max_steps):
    """The run directory a run with ``train.max_steps=max_steps`` leaves when it is killed."""
    from nwb_autolfads.rundir import RUN_FINGERPRINT, RUNDIR_FORMAT, default_rundir

    rundir = default_rundir(tiny.with_name("tiny_autolfads.nwb"))
    rundir.mkdir()
    (rundir / "model_state.pt").write_bytes(b"hours of training")
    from nwb_autolfads.config import build_config
    cfg = build_config("smoke", overrides={"train.max_steps": max_steps, "pbt.population": 1,
                                           "windows.window_bins": 8, "windows.overlap_bins": 2}).to_dict()
    cfg = {k: v for k, v in cfg.items() if k not in ("device", "inference", "output")}  # as rundir.prepare_rundir
    (rundir / RUN_FINGERPRINT).write_text(json.dumps({"format": RUNDIR_FORMAT, "config": cfg, "data_sha256": "0" * 64}))
    return rundir


def test_changed_setting_refuses_and_keeps_the_interrupted_state(tiny, capsys):
    rundir = _interrupted_rundir(tiny, 1500)
    assert main(["run", str(tiny), *SMOKE, "--population", "1"]) == 2
    line = _err_line(capsys)
    assert str(rundir) in line and "--resume" in line and "--fresh" in line and "train.max_steps" in line
    assert (rundir / "model_state.pt").read_bytes() == b"hours of training"
    assert not tiny.with_name("tiny_autolfads.nwb").exists()


def test_fresh_moves_the_old_state_aside_and_runs(tiny, capsys):
    rundir = _interrupted_rundir(tiny, 1500)
    assert main(["run", str(tiny), *SMOKE, "--population", "1", "--fresh"]) == 0
    assert tiny.with_name("tiny_autolfads.nwb").is_file()
    aside = [p for p in tiny.parent.iterdir() if p.name.startswith(rundir.name + ".")]
    assert len(aside) == 1 and (aside[0] / "model_state.pt").read_bytes() == b"hours of training"
    assert not rundir.exists()
    assert main(["run", str(tiny), *SMOKE, "--fresh", "--resume", str(aside[0])]) == 2


# ---------------------------------------------------------------- 2b. state of another version: refused, kept
def _rundir_of_this_run(tiny, monkeypatch, argv):
    """The run directory ``argv`` leaves when it is interrupted before training (its fingerprint
    matches the same command run again)."""
    import nwb_autolfads.pipeline as pipeline
    from nwb_autolfads.rundir import default_rundir

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(pipeline, "train_data", interrupted)
        assert main(argv) == 130
    return default_rundir(tiny.with_name("tiny_autolfads.nwb"))


def _old_state(kind: str) -> bytes:
    """A checkpoint as versions before the format key wrote it: a dict missing the newer keys, or
    a pickle of objects that ``weights_only`` refuses."""
    import io

    import torch

    from nwb_autolfads.train.loop import TrainResult

    buf = io.BytesIO()
    torch.save({"step": 20, "smoothed": 1.0} if kind == "missing keys" else {"step": 20, "result": TrainResult()}, buf)
    return buf.getvalue()


def _assert_refused_and_kept(rundir, state: dict, capsys):
    line = _err_line(capsys)
    assert str(rundir) in line and "another version" in line and "--fresh" in line and "Traceback" not in line
    assert {p.name: p.read_bytes() for p in rundir.iterdir() if p.is_file() and p.name in state} == state


@pytest.mark.parametrize("layout", ["model_state.pt", "pbt_state.pt", "ray_resume"])
def test_a_previous_versions_run_directory_is_refused_kept_and_fresh_moves_it_aside(tiny, monkeypatch, capsys, layout):
    """A run directory whose fingerprint matches but that the previous version wrote (no format in
    fingerprint.json; a single model's, a population's or a Ray run's state): one line, exit 2,
    nothing deleted (also not after a run that finishes); --fresh moves it aside and runs."""
    from nwb_autolfads.rundir import RUN_FINGERPRINT

    argv = ["run", str(tiny), *SMOKE, "--population", "1"]
    rundir = _rundir_of_this_run(tiny, monkeypatch, argv)
    marker = rundir / RUN_FINGERPRINT
    marker.write_text(json.dumps({k: v for k, v in json.loads(marker.read_text()).items() if k != "format"}))
    state = {layout: _old_state("objects")} if layout != "ray_resume" else {}
    if layout == "ray_resume":
        (rundir / "ray_resume").mkdir()
        (rundir / "ray_resume" / "pbt_resume.pt").write_bytes(_old_state("missing keys"))
    else:
        (rundir / layout).write_bytes(state[layout])
    assert main(argv) == 2
    _assert_refused_and_kept(rundir, state, capsys)
    assert not tiny.with_name("tiny_autolfads.nwb").exists() and (rundir / "ray_resume").exists() == (
        layout == "ray_resume")
    assert main([*argv, "--fresh"]) == 0
    aside = [p for p in tiny.parent.iterdir() if p.name.startswith(rundir.name + ".")]
    assert len(aside) == 1 and (aside[0] / (layout if state else "ray_resume")).exists()


@pytest.mark.parametrize("population,name", [("1", "model_state.pt"), ("2", "pbt_state.pt")])
@pytest.mark.parametrize("kind", ["missing keys", "objects"])
def test_an_old_checkpoint_in_a_matching_run_directory_is_one_line_and_kept(tiny, monkeypatch, capsys, population,
                                                                            name, kind):
    """This version's run directory (same fingerprint) with a checkpoint of the previous format:
    the single model (trained in a child process) and the population refuse it in one line."""
    argv = ["run", str(tiny), *SMOKE, "--population", population, "--set", "pbt.max_generations=2"]
    rundir = _rundir_of_this_run(tiny, monkeypatch, argv)
    (rundir / name).write_bytes(_old_state(kind))
    assert main(argv) == 2
    _assert_refused_and_kept(rundir, {name: _old_state(kind)}, capsys)
    assert not tiny.with_name("tiny_autolfads.nwb").exists()


def _damaged_state(kind: str) -> bytes:
    """A checkpoint as a kill or a full disk leaves it: empty, cut short, or other bytes."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"step": 20, "w": torch.zeros(256), "format": 2}, buf)
    return {"empty": b"", "truncated": buf.getvalue()[:len(buf.getvalue()) // 3],
            "garbage": b"PK\x03\x04" + b"x" * 1000, "text": b"hello"}[kind]


@pytest.mark.parametrize("population,name", [("1", "model_state.pt"), ("2", "pbt_state.pt")])
@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "text"])
def test_a_damaged_checkpoint_is_one_line_kept_and_fresh_moves_it_aside(tiny, monkeypatch, capsys, population, name,
                                                                        kind):
    """An interrupted run's checkpoint that a kill or a full disk damaged (the single model's, the
    population's): the same command again says so in one line naming the file (no traceback, exit 2),
    deletes nothing; --fresh moves it aside and runs."""
    argv = ["run", str(tiny), *SMOKE, "--population", population, "--set", "pbt.max_generations=2"]
    rundir = _rundir_of_this_run(tiny, monkeypatch, argv)
    (rundir / name).write_bytes(_damaged_state(kind))
    assert main(argv) == 2
    line = _err_line(capsys)
    assert str(rundir) in line and name in line and "damaged" in line and "--fresh" in line
    assert "Traceback" not in line and (rundir / name).read_bytes() == _damaged_state(kind)
    assert main([*argv, "--fresh"]) == 0
    aside = [p for p in tiny.parent.iterdir() if p.name.startswith(rundir.name + ".")]
    assert len(aside) == 1 and (aside[0] / name).read_bytes() == _damaged_state(kind)


@pytest.mark.parametrize("damage", ["truncated", "list", "empty", "no config"])
def test_a_damaged_fingerprint_says_so_and_points_to_fresh_not_resume(tiny, monkeypatch, capsys, damage):
    """A run directory whose fingerprint.json is cut short or not ours: the message says it is
    damaged and points to --fresh (not to --resume, which would refuse the same way); with --resume
    too; nothing is deleted; --fresh moves it aside and runs."""
    from nwb_autolfads.rundir import RUN_FINGERPRINT

    argv = ["run", str(tiny), *SMOKE, "--population", "1"]
    rundir = _rundir_of_this_run(tiny, monkeypatch, argv)
    marker = rundir / RUN_FINGERPRINT
    text = marker.read_text()
    marker.write_text({"truncated": text[:len(text) // 2], "list": "[]", "empty": "",
                       "no config": json.dumps({"format": 2})}[damage])
    (rundir / "model_state.pt").write_bytes(b"hours of training")
    damaged = marker.read_bytes()
    for extra in ([], ["--resume", str(rundir)]):
        assert main([*argv, *extra]) == 2
        line = _err_line(capsys)
        assert str(rundir) in line and RUN_FINGERPRINT in line and "damaged" in line and "--fresh" in line
        assert "continue it with --resume" not in line and "other data or settings" not in line
        assert marker.read_bytes() == damaged and (rundir / "model_state.pt").read_bytes() == b"hours of training"
    assert main([*argv, "--fresh"]) == 0
    aside = [p for p in tiny.parent.iterdir() if p.name.startswith(rundir.name + ".")]
    assert len(aside) == 1 and (aside[0] / RUN_FINGERPRINT).read_bytes() == damaged


# ---------------------------------------------------------------- 3. a bad option creates nothing
def test_bad_device_leaves_nothing_behind(tiny, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = sorted(p.name for p in tiny.parent.iterdir())
    assert main(["run", str(tiny), *SMOKE, "--device", "cuda"]) == 2
    assert "cuda" in _err_line(capsys)
    assert sorted(p.name for p in tiny.parent.iterdir()) == before


# ---------------------------------------------------------------- 4. a preset and a config file: one rule
def test_config_show_then_run_with_another_preset_is_refused_the_same_way(tiny, tmp_path, capsys):
    assert main(["config", "--show"]) == 0
    dumped = tmp_path / "my.yaml"
    dumped.write_text(capsys.readouterr().out)
    assert main(["config", "--show", "--config", str(dumped), "--preset", "quick"]) == 2
    config_err = _err_line(capsys)
    assert main(["run", str(tiny), "--config", str(dumped), "--preset", "quick", "-q"]) == 2
    assert _err_line(capsys) == config_err and "preset 'default'" in config_err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.yaml", "tiny.nwb"]
    # a file written for the preset runs with it, and config --show shows what run records
    assert main(["config", "--show", "--preset", "smoke"]) == 0
    dumped.write_text(capsys.readouterr().out)
    assert main(["config", "--show", "--config", str(dumped), "--preset", "smoke", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preset"] == "smoke" and shown["pbt"]["population"] == 2


def test_config_help_describes_its_options_and_the_rule(capsys):
    with pytest.raises(SystemExit):
        main(["config", "--help"])
    out = capsys.readouterr().out
    assert "underneath" in out
    text = " ".join(out.split())
    for words in ("start from this preset", "apply over the preset", "override one setting", "JSON instead"):
        assert words in text


def test_config_show_has_descriptions_as_yaml_comments(capsys):
    assert main(["config", "--show", "--preset", "quick"]) == 0
    out = capsys.readouterr().out
    assert "# Model bin width in seconds." in out and "# Initial learning rate of Adam." in out
    assert yaml.safe_load(out)["preset"] == "quick"


# ---------------------------------------------------------------- 5. provenance: version, git revision, preset
def test_git_revision_says_when_not_a_git_checkout(tmp_path):
    from importlib.metadata import version

    import nwb_autolfads
    from nwb_autolfads.io.writing import git_revision

    assert nwb_autolfads.__version__ == version("nwb-autolfads")
    assert git_revision(tmp_path) == f"not a git checkout (installed package {nwb_autolfads.__version__})"
    assert git_revision()  # this checkout: a revision, never empty


def test_runs_show_the_preset_and_the_git_revision(tiny, capsys):
    assert main(["run", str(tiny), *SMOKE]) == 0
    out = tiny.with_name("tiny_autolfads.nwb")
    capsys.readouterr()
    assert main(["runs", str(out), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["preset"] == "smoke" and info["git_revision"]
    assert main(["runs", str(out)]) == 0
    assert "preset smoke" in capsys.readouterr().out


# ---------------------------------------------------------------- 6. --emg at a series that is not EMG
def test_emg_pointed_at_kinematics_warns_in_stderr_summary_and_provenance(tmp_path, capsys, caplog):
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.series import emg_doubt, iter_series
    from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

    path = write_emg_nwb(tmp_path / "beh.nwb", synthetic_emg(duration=4.0, rate=1000.0, n_muscles=2, seed=2),
                         behavior=True)
    with open_nwb(path) as (_io, nwb):
        doubts = {c.path: emg_doubt(c) for c in iter_series(nwb)}
    assert doubts["acquisition/EMG"] is None  # the EMG raises no doubt
    assert "kinematics" in doubts["processing/behavior/joint_angles"]
    assert "'N'" in doubts["processing/behavior/force"]
    # joint angles at 100 Hz look like raw EMG no recording has: refused unless called an envelope
    assert main(["run", str(path), "--emg", "processing/behavior/joint_angles", *SMOKE]) == 2
    assert "sampled at 100 Hz cannot hold the EMG band" in capsys.readouterr().err
    assert main(["run", str(path), "--emg", "processing/behavior/joint_angles", "--emg-preprocessed", *SMOKE]) == 0
    assert "does not look like EMG" in caplog.text and "radians" in caplog.text
    out = capsys.readouterr().out
    assert "WARNING" in out and "does not look like EMG" in out
    import nwb_autolfads
    assert "does not look like EMG" in nwb_autolfads.load_results(tmp_path / "beh_autolfads.nwb").attrs["description"]


# ---------------------------------------------------------------- 7. next steps: --model spikes; channel names
def test_units_without_emg_suggest_model_spikes(tmp_path, capsys):
    import h5py

    from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

    path = write_emg_nwb(tmp_path / "units.nwb", synthetic_emg(duration=3.0, rate=1000.0, n_muscles=2, seed=4),
                         name="Accelerometer", n_units=4, include_truth=False)
    with h5py.File(path, "a") as f:
        f["acquisition/Accelerometer"].attrs["description"] = "3-axis accelerometer"
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "--model spikes" in out
    assert main(["run", str(path), "-q", "--preset", "smoke"]) == 2
    line = _err_line(capsys)
    assert "--model spikes" in line and "--emg" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units.nwb"]


def test_inspect_lists_channel_names(tiny, capsys):
    assert main(["inspect", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "channels: TA, MG" in out
    assert main(["inspect", str(tiny), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["modalities"]["emg"][0]["channels"] == ["TA", "MG"]


# ---------------------------------------------------------------- 8. a closed stdout is no error
@pytest.mark.parametrize("args", [["inspect", "{tiny}"], ["inspect", "{tiny}", "--json"], ["config", "--show"]])
def test_closed_stdout_is_handled_quietly(tiny, args):
    read, write = os.pipe()
    os.close(read)  # like `| head -1` that has already exited
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", *[a.format(tiny=tiny) for a in args]],
                          stdout=write, stderr=subprocess.PIPE, text=True, env=env)
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0


# ---------------------------------------------------------------- 9. next steps that are true
def test_summary_offers_only_comparisons_the_file_allows(tmp_path):
    import nwb_autolfads
    from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

    path = write_emg_nwb(tmp_path / "u.nwb", synthetic_emg(duration=3.0, rate=1000.0, n_muscles=2, seed=5),
                         n_units=3, include_truth=False)
    result = nwb_autolfads.run(path, preset="smoke", progress=False, overrides={
        "data.model": "spikes", "windows.window_bins": 8, "windows.overlap_bins": 2, "pbt.population": 1})
    text = result.summary()
    assert "nothing in the input to score against" in text and "low-pass" not in text
    result.score_targets = ["kinematics"]  # as for a file with kinematics
    assert "evaluate" in result.summary() and "smoothed spikes" in result.summary()
    reported = result.summary(report=tmp_path / "rep")
    assert str(tmp_path / "rep" / "index.html") in reported and "--report report/" not in reported


def _fake_report(ev, folder, ds=None):
    folder.mkdir(parents=True)
    (folder / "index.html").write_text(f"<img src='{ev}.png'>")
    (folder / "evaluation.json").write_text("{}")
    (folder / f"{ev}.png").write_text(ev)


def test_report_folder_is_replaced_whole_and_other_folders_are_refused(tmp_path, monkeypatch):
    from nwb_autolfads.evaluation import report
    from nwb_autolfads.errors import OutputError

    monkeypatch.setattr(report, "_write_into", _fake_report)
    rep = tmp_path / "rep"
    report.write_report("first", rep)
    report.write_report("second", rep)  # a previous report: replaced, no stale figure
    assert sorted(p.name for p in rep.iterdir()) == ["evaluation.json", "index.html", "second.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary folder left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="thesis.tex.*empty or new folder"):
        report.write_report("third", mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    with pytest.raises(OutputError, match="NWB output only"):  # --overwrite never replaces a folder of the user's
        report.write_report("third", mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    own = tmp_path / "own"  # a report folder plus a figure of the user's that the page does not show
    report.write_report("fourth", own)
    (own / "my_figure.png").write_text("mine")
    assert not report.is_report_folder(own)
    with pytest.raises(OutputError, match="my_figure.png"):
        report.write_report("fifth", own, overwrite=True)
    assert (own / "my_figure.png").read_text() == "mine"


def test_run_report_into_a_foreign_folder_is_refused_before_training(tiny, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["run", str(tiny), *SMOKE, "--report", str(mine)]) == 2
    assert "empty or new folder" in _err_line(capsys)
    assert not tiny.with_name("tiny_autolfads.nwb").exists() and (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("where", ["project", "dot"])
def test_run_report_with_overwrite_never_replaces_the_project_folder(tiny, tmp_path, capsys, monkeypatch, where):
    """`run IN -o OUT --report DIR --overwrite` with DIR the folder holding the input: --overwrite is
    the NWB output's; it once let the report replace DIR whole, deleting the input and results."""
    import hashlib

    project = tiny.parent
    (project / "notes.txt").write_text("keep")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in project.iterdir() if p.is_file()}
    monkeypatch.chdir(project)
    folder = str(project) if where == "project" else "."
    assert main(["run", str(tiny), *SMOKE, "-o", str(project / "out.nwb"), "--report", folder, "--overwrite"]) == 2
    assert "not a previous report" in _err_line(capsys)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in project.iterdir() if p.is_file()}
    assert after == before  # nothing trained, written or deleted


def test_unknown_option_points_to_the_command_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "x.nwb", "--presett", "smoke"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nwb-autolfads run --help" in err and "did you mean --preset" in err


# ---------------------------------------------------------------- 10. smoke results are labelled as not for use
def test_smoke_result_says_it_is_not_meant_to_be_used(tiny, capsys):
    import nwb_autolfads

    assert main(["run", str(tiny), *SMOKE]) == 0
    assert "not meant to be used" in capsys.readouterr().out
    ds = nwb_autolfads.load_results(tiny.with_name("tiny_autolfads.nwb"))
    assert "not meant to be used" in ds.attrs["description"]


# ---------------------------------------------------------------- issue 17: stdout holds the results, nothing else
def test_stdout_holds_only_results_and_v_q_choose_what_stderr_shows(tiny, capfd):
    """run, runs, inspect, evaluate and config print their results (summary, JSON, YAML) on stdout
    and nothing else; progress and log lines go to stderr: -v adds info lines, -q leaves no progress."""
    out_path = tiny.with_name("tiny_autolfads.nwb")
    assert main(["-v", "run", str(tiny), *SMOKE[:2], *SMOKE[3:]]) == 0
    out, err = capfd.readouterr()
    assert out.startswith("nwb-autolfads run finished\n") and f"  output      {out_path}\n" in out, out
    assert all(line.startswith("  ") for line in out.splitlines()[1:]), out  # the summary alone
    assert "nwb-autolfads: info: read " in err and "nwb-autolfads plan (before training)" in err and "%|" in err
    assert main(["-q", "run", str(tiny), *SMOKE[:2], *SMOKE[3:], "--overwrite"]) == 0
    out, err = capfd.readouterr()
    assert "%|" not in err and "nwb-autolfads: info" not in err and "\r" not in err  # no bar, no info
    for argv in (["runs", str(out_path), "--json"], ["inspect", str(tiny), "--json"],
                 ["evaluate", str(out_path), "--json", "--folds", "2", "--lags", "2"], ["-v", "config", "--json"]):
        assert main(argv) == 0
        out, _ = capfd.readouterr()
        json.loads(out)  # the whole of stdout is the JSON
    assert main(["config", "--show", "--preset", "smoke"]) == 0
    assert yaml.safe_load(capfd.readouterr().out)["preset"] == "smoke"


def test_a_series_that_does_not_look_like_emg_is_never_chosen_automatically(tmp_path, capsys):
    """A muscle-length series (unit m, description mentioning muscles) beside the EMG once won the
    automatic choice and was modelled as EMG; alone, it was modelled with a warning."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    import numpy as np

    import nwb_autolfads
    from nwb_autolfads.io.inspection import inspect_file

    def write(path, with_emg):
        nwb = NWBFile("s", "s", datetime(2024, 1, 1, tzinfo=timezone.utc))
        rng = np.random.default_rng(0)
        if with_emg:
            nwb.add_acquisition(TimeSeries(name="EMG", data=rng.normal(0, 1e-4, (3000, 2)), unit="volts", rate=1000.0,
                                           description="raw signals from the amplifier"))
        length = TimeSeries(name="MuscleLength", data=0.1 + 0.01 * rng.random((300, 4)), unit="m", rate=100.0,
                            description="muscle-tendon lengths of the muscles")
        nwb.create_processing_module("behavior", "b").add(length)
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
        return path

    both = write(tmp_path / "both.nwb", True)
    assert inspect_file(both)["default"]["emg"] == "acquisition/EMG"
    assert main(["run", str(both), *SMOKE, "-q"]) == 0
    assert nwb_autolfads.load_results(tmp_path / "both_autolfads.nwb").emg_activations.shape[1] == 2  # the EMG's
    capsys.readouterr()
    alone = write(tmp_path / "alone.nwb", False)
    assert main(["run", str(alone), *SMOKE]) == 2
    err = _err_line(capsys)
    assert "processing/behavior/MuscleLength, does not look like EMG (its unit is 'm'" in err and "--emg" in err
    assert not (tmp_path / "alone_autolfads.nwb").exists()
    assert inspect_file(alone)["default"]["emg"] is None


def test_a_taken_or_unusable_run_name_is_refused_before_training(tiny, capsys, monkeypatch):
    """Testers' reports: --run-name NAME that the file had already became NAME_2 silently (and
    load_results(run=NAME) gave the old run); a name that cannot be written failed after training."""
    import nwb_autolfads.pipeline as pipeline
    from nwb_autolfads.io.writing import file_sha256

    assert main(["run", str(tiny), *SMOKE, "--in-place", "--run-name", "mine"]) == 0
    before = file_sha256(tiny)
    capsys.readouterr()

    def no_training(*a, **k):
        raise AssertionError("trained")

    monkeypatch.setattr(pipeline, "_preprocess", no_training)
    assert main(["run", str(tiny), *SMOKE, "--in-place", "--run-name", "mine"]) == 2
    assert "'mine' is taken" in _err_line(capsys)
    assert main(["run", str(tiny), *SMOKE, "--in-place", "--run-name", "a/b"]) == 2
    assert "cannot be used" in _err_line(capsys)
    assert main(["run", str(tiny), *SMOKE, "-o", str(tiny.with_name("new.nwb")), "--run-name", "a/b"]) == 2
    assert file_sha256(tiny) == before and not tiny.with_name("new.nwb").exists()


def test_overwrite_never_replaces_a_recording(tiny, tmp_path, capsys):
    """A tester's report: ``run a.nwb -o b.nwb --overwrite`` replaced b.nwb, another recording."""
    from nwb_autolfads.io.writing import file_sha256

    other = mock_emg_nwb(tmp_path / "other.nwb", duration=3.0, rate=1000.0, n_muscles=2, seed=4)
    before = file_sha256(other)
    assert main(["run", str(tiny), *SMOKE, "-o", str(other), "--overwrite"]) == 2
    assert "not a result of nwb-autolfads" in _err_line(capsys)
    assert file_sha256(other) == before


@pytest.mark.parametrize("where", ["new", "empty"])
def test_an_output_inside_the_report_folder_is_refused_before_training(tiny, tmp_path, capsys, where):
    """A tester's report: ``run -o DIR/x.nwb --report DIR`` (DIR new or empty) trained, wrote the
    output into DIR, then refused the report (exit 2: "nothing in it was changed", though it was)."""
    folder = tmp_path / "results"
    if where == "empty":
        folder.mkdir()
    assert main(["run", str(tiny), *SMOKE, "-o", str(folder / "x.nwb"), "--report", str(folder)]) == 2
    assert "inside the report folder" in _err_line(capsys)
    assert not (folder / "x.nwb").exists() and not list(tmp_path.glob("**/*.autolfads-model"))


def test_sigterm_is_said_and_exits_143_and_interrupts_say_what_was_written(tiny, tmp_path, capsys, monkeypatch):
    """Testers' reports: SIGTERM (a scheduler's stop) ended a run with exit 143 and no word; an
    interrupt said "no output was written" also for apply and evaluate (no training to continue)
    and after a run's output was written (only its report was not)."""
    import signal
    import time

    import nwb_autolfads.cli as cli

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "_run_pipeline", terminated)
    assert main(["run", str(tiny), *SMOKE]) == 143
    err = capsys.readouterr().err
    assert "nwb-autolfads: terminated (SIGTERM); no output was written (run the same command again" in err
    assert signal.getsignal(signal.SIGTERM) == before  # the command's handler is gone

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_apply", interrupted)
    assert main(["apply", "model.autolfads-model", str(tiny)]) == 130
    assert capsys.readouterr().err.strip() == "nwb-autolfads: interrupted; no output was written (run the same command again)"
    monkeypatch.setattr(cli, "_cmd_evaluate", interrupted)
    assert main(["evaluate", str(tiny)]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_evaluate_and_report", interrupted)
    out = tmp_path / "x.nwb"
    assert main(["run", str(tiny), *SMOKE, "-o", str(out), "--report", str(tmp_path / "report")]) == 130
    err = capsys.readouterr().err
    assert f"interrupted after the output was written: {out} is complete; the report was not written" in err
    assert out.exists()
