"""A whole dandiset in one command (nwb_autolfads.batch): a fake dandiset whose files are served
from 127.0.0.1 (the range server of test_streaming) and listed by the fake DANDI client of
nwb_autolfads.testing.dandi, run end to end with --preset smoke, killed mid-batch and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nwb_autolfads
from nwb_autolfads.cli import main
from nwb_autolfads.io.writing import file_sha256
from nwb_autolfads.testing import chunked_spikes_nwb, mock_emg_nwb
from nwb_autolfads.testing.dandi import FakeDandiArchive

from test_streaming import _serve

EMG = {"duration": 3.0, "rate": 1000.0, "n_muscles": 3}


@pytest.fixture(scope="module")
def dandiset(tmp_path_factory):
    """000941: two sessions with EMG, one with spikes only (skipped: no EMG), one .nwb that is not
    NWB (failed), and a README (not NWB: skipped in the plan)."""
    root = tmp_path_factory.mktemp("dandiset")
    for sub in ("sub-R1", "sub-R2", "sub-R3", "sub-R4"):
        (root / sub).mkdir()
    mock_emg_nwb(root / "sub-R1" / "sub-R1_ses-1_ecephys.nwb", seed=1, **EMG)
    mock_emg_nwb(root / "sub-R2" / "sub-R2_ses-1_ecephys.nwb", seed=2, **EMG)
    chunked_spikes_nwb(root / "sub-R3" / "sub-R3_ses-1_ecephys.nwb", duration=3.0, n_units=4, block_seconds=3.0)
    (root / "sub-R4" / "sub-R4_ses-1_ecephys.nwb").write_text("not hdf5")
    (root / "README.md").write_text("a fake dandiset")
    with _serve(root) as url:
        yield root, url


@pytest.fixture
def archive(monkeypatch, dandiset):
    import dandi.dandiapi
    import dandi.utils

    fake = FakeDandiArchive(*dandiset, published=("0.240101.1200",))
    monkeypatch.setattr(dandi.utils, "_get_instance", lambda url, is_api, instance, dandi_id: instance)
    monkeypatch.setattr(dandi.dandiapi, "DandiAPIClient", fake.client())
    return fake


def test_dry_run_prints_the_plan_and_writes_nothing(archive, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "DANDI:000941", "--dry-run", "--preset", "smoke"]) == 0
    plan = capsys.readouterr().out
    assert "dandiset 000941 version 0.240101.1200 (most recent published version" in plan
    for name, what in (("README.md", "skip  not an NWB file"),
                       ("sub-R1/sub-R1_ses-1_ecephys.nwb", "run   -> sub-R1/sub-R1_ses-1_desc-autolfads_emg.nwb"),
                       ("sub-R4/sub-R4_ses-1_ecephys.nwb", "run   -> sub-R4/sub-R4_ses-1_desc-autolfads_emg.nwb")):
        assert any(name in line and what in line for line in plan.splitlines()), (name, plan)
    assert "4 to run" in plan and "1 skipped" in plan and "000941-autolfads" in plan and "kB" in plan
    assert os.listdir(tmp_path) == []
    # a glob of the dandiset's assets, and its version pinned
    assert main(["run", "DANDI:000941@0.230101.0000/sub-R*/*.nwb", "--dry-run", "-q"]) == 0
    plan = capsys.readouterr().out
    assert "4 input(s)" in plan and "README" not in plan and "version 0.230101.0000 (given in the URL)" in plan
    assert ("get_dandiset", "000941", "0.230101.0000") in archive.calls


def test_a_dandiset_runs_end_to_end_into_a_dandi_folder(archive, dandiset, tmp_path, capsys):
    root, url = dandiset
    out = tmp_path / "out"
    code = main(["run", "dandi://dandi/000941", "-o", str(out), "--preset", "smoke", "-q"])
    summary = capsys.readouterr().out
    assert code == 1, summary  # one asset failed: the batch went on, and says so
    assert "5 input(s): 2 done, 1 failed, 2 skipped" in summary
    manifest = json.loads((out / "autolfads-manifest.json").read_text())
    rows = {r["name"]: r for r in manifest["assets"]}
    assert manifest["dandiset"]["version"] == "0.240101.1200" and manifest["settings"]["preset"] == "smoke"
    assert rows["sub-R2/sub-R2_ses-1_ecephys.nwb"]["status"] == "done"
    assert rows["sub-R3/sub-R3_ses-1_ecephys.nwb"]["status"] == "skipped"
    assert "EMG" in rows["sub-R3/sub-R3_ses-1_ecephys.nwb"]["reason"]
    assert rows["sub-R4/sub-R4_ses-1_ecephys.nwb"]["status"] == "failed"
    assert "not NWB" in rows["sub-R4/sub-R4_ses-1_ecephys.nwb"]["reason"]
    done = rows["sub-R1/sub-R1_ses-1_ecephys.nwb"]
    output = out / "sub-R1" / "sub-R1_ses-1_desc-autolfads_emg.nwb"
    assert done["output"] == "sub-R1/sub-R1_ses-1_desc-autolfads_emg.nwb" and file_sha256(output) == done["output_sha256"]
    assert done["asset_id"] and done["version"] == "0.240101.1200" and done["seconds"] > 0
    source = json.loads(nwb_autolfads.load_results(output).attrs["source"])
    assert (source["asset_id"], source["dandiset_version"], source["url"]) == (
        done["asset_id"], "0.240101.1200", f"{url}/sub-R1/sub-R1_ses-1_ecephys.nwb")
    # each result keeps its trained model beside it, named in the manifest with its SHA-256
    assert done["model"] == "sub-R1/sub-R1_ses-1_desc-autolfads_emg.autolfads-model" and done["model_sha256"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "autolfads-manifest.json",
        "sub-R1/sub-R1_ses-1_desc-autolfads_emg.autolfads-model/model.json",
        "sub-R1/sub-R1_ses-1_desc-autolfads_emg.autolfads-model/model.safetensors",
        "sub-R1/sub-R1_ses-1_desc-autolfads_emg.nwb",
        "sub-R2/sub-R2_ses-1_desc-autolfads_emg.autolfads-model/model.json",
        "sub-R2/sub-R2_ses-1_desc-autolfads_emg.autolfads-model/model.safetensors",
        "sub-R2/sub-R2_ses-1_desc-autolfads_emg.nwb"]
    # the folder is a DANDI layout that `dandi validate` accepts (with the dandiset's dandiset.yaml)
    (out / "dandiset.yaml").write_text("identifier: DANDI:000941\nname: t\ndescription: t\n")
    dandi = Path(sys.executable).with_name("dandi")
    if dandi.exists():
        proc = subprocess.run([str(dandi), "validate", str(out)], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "DANDI_DEVEL": "", "DANDI_CACHE": "ignore"})
        assert proc.returncode == 0 and "No errors found" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _manifest_rows(path: Path) -> dict:
    try:
        return {r["name"]: r for r in json.loads(path.read_text())["assets"]}
    except (OSError, ValueError, KeyError):
        return {}


def test_a_killed_batch_resumes_skipping_finished_assets(dandiset, tmp_path):
    root, url = dandiset
    www = tmp_path / "www"  # three assets with EMG: the dandiset above without its faulty ones
    for sub in ("sub-R1", "sub-R2", "sub-R5"):
        (www / sub).mkdir(parents=True)
    for sub in ("sub-R1", "sub-R2"):
        (www / sub / f"{sub}_ses-1_ecephys.nwb").write_bytes((root / sub / f"{sub}_ses-1_ecephys.nwb").read_bytes())
    mock_emg_nwb(www / "sub-R5" / "sub-R5_ses-1_ecephys.nwb", seed=5, **EMG)
    out = tmp_path / "out"
    code = (f"import sys; from nwb_autolfads.testing.dandi import install_fake_dandi; "
            f"install_fake_dandi({str(www)!r}, {{url!r}}); from nwb_autolfads.cli import main; "
            f"sys.exit(main(['run', 'DANDI:000941', '-o', {str(out)!r}, '--preset', 'smoke', '-q']))")
    with _serve(www) as www_url:
        cmd = [sys.executable, "-c", code.format(url=www_url)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        first = out / "sub-R1" / "sub-R1_ses-1_desc-autolfads_emg.nwb"
        deadline = time.time() + 240
        while _manifest_rows(out / "autolfads-manifest.json").get("sub-R1/sub-R1_ses-1_ecephys.nwb", {}).get(
                "status") != "done":
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-batch: the second asset is being read or trained
        proc.wait()
        assert first.is_file()
        rows = _manifest_rows(out / "autolfads-manifest.json")
        assert rows["sub-R5/sub-R5_ses-1_ecephys.nwb"]["status"] != "done"
        sha, mtime = file_sha256(first), first.stat().st_mtime_ns
        rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 done (1 earlier)" in rerun.stdout or "3 done (2 earlier)" in rerun.stdout, rerun.stdout
    assert (file_sha256(first), first.stat().st_mtime_ns) == (sha, mtime)  # not run again
    rows = _manifest_rows(out / "autolfads-manifest.json")
    assert {r["status"] for r in rows.values()} == {"done"} and len(rows) == 3
    assert all(file_sha256(out / r["output"]) == r["output_sha256"] for r in rows.values())
    assert not [p for p in out.rglob(".*") if p.suffix == ".rundir"]  # the interrupted asset's state was used up


def test_local_files_into_another_folder_record_each_model_relative_to_the_manifest(tmp_path, monkeypatch, capsys):
    """Files that are not DANDI-named (results at the output folder's top level and in a
    subfolder), run into an output folder that is not the working directory: each manifest row's
    ``model`` is relative to the manifest's folder (as ``output`` is), and names the model kept."""
    data, out, cwd = tmp_path / "data", tmp_path / "results" / "out", tmp_path / "elsewhere"
    (data / "day2").mkdir(parents=True)
    cwd.mkdir()
    mock_emg_nwb(data / "a.nwb", seed=1, **EMG)
    mock_emg_nwb(data / "day2" / "b.nwb", seed=2, **EMG)
    monkeypatch.chdir(cwd)
    assert main(["run", str(data), "-o", str(out), "--preset", "smoke", "-q"]) == 0, capsys.readouterr()
    rows = {r["name"]: r for r in json.loads((out / "autolfads-manifest.json").read_text())["assets"]}
    assert {n: (r["output"], r["model"]) for n, r in rows.items()} == {
        "a.nwb": ("a_autolfads.nwb", "a_autolfads.autolfads-model"),
        "day2/b.nwb": ("day2/b_autolfads.nwb", "day2/b_autolfads.autolfads-model")}
    assert all((out / r["model"] / "model.json").is_file() for r in rows.values())
    assert os.listdir(cwd) == []


def test_jobs_run_inputs_in_parallel_processes_with_the_same_results(tmp_path, capsys):
    folder = tmp_path / "data"
    for sub in ("sub-J1", "sub-J2"):
        (folder / sub).mkdir(parents=True)
        mock_emg_nwb(folder / sub / f"{sub}_ses-1_ecephys.nwb", seed=int(sub[-1]), **EMG)
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        assert main(["run", str(folder), "-o", str(out), "--jobs", jobs, "--preset", "smoke", "-q",
                     "--set", "train.threads=1"]) == 0
        rows = json.loads((out / "autolfads-manifest.json").read_text())["assets"]
        assert [r["status"] for r in rows] == ["done", "done"]
        runs[jobs] = {r["name"]: nwb_autolfads.load_results(out / r["output"]).emg_activations.values for r in rows}
    assert "2 done" in capsys.readouterr().out
    for name, values in runs["1"].items():  # each worker process gives what the batch gives in-process
        assert values.shape == runs["2"][name].shape and (values == runs["2"][name]).all(), name


def test_a_subjects_sessions_on_dandi_train_one_model(tmp_path, monkeypatch, capsys):
    import dandi.dandiapi
    import dandi.utils

    www = tmp_path / "www"
    (www / "sub-R7").mkdir(parents=True)
    for ses, n in ((1, 3), (2, 4)):
        mock_emg_nwb(www / "sub-R7" / f"sub-R7_ses-{ses}_ecephys.nwb", seed=ses, **{**EMG, "n_muscles": n})
    out = tmp_path / "out"
    with _serve(www) as url:
        fake = FakeDandiArchive(www, url, published=("0.240101.1200",))
        monkeypatch.setattr(dandi.utils, "_get_instance", lambda url, is_api, instance, dandi_id: instance)
        monkeypatch.setattr(dandi.dandiapi, "DandiAPIClient", fake.client())
        assert main(["run", "DANDI:000941/sub-R7/", "--multi-session", "-o", str(out), "--preset", "smoke", "-q",
                     "--set", "train.threads=1"]) == 0
    rows = json.loads((out / "autolfads-manifest.json").read_text())["assets"]
    assert [r["status"] for r in rows] == ["done", "done"] and rows[0]["model"] == rows[1]["model"] != ""
    runs = [nwb_autolfads.list_runs(out / r["output"])[-1] for r in rows]
    assert runs[0].sessions == runs[1].sessions == ["sub-R7_ses-1_ecephys", "sub-R7_ses-2_ecephys"]
    assert [len(r.channels) for r in runs] == [3, 4]


def _summary(capsys, args, code=0) -> str:
    assert main(args) == code, capsys.readouterr()
    return capsys.readouterr().out


def test_a_rewritten_input_is_kept_or_run_again_and_a_deleted_model_stays_done(tmp_path, capsys):
    """The same command run again after an input was rewritten with other data never counts the
    old result "done earlier": it keeps it (exit 1, with the reason) or, with --overwrite, runs it
    again; a model folder deleted to save space leaves its result done (a tester's report: it was
    trained again and the result replaced without --overwrite); a manifest of an earlier version
    (no input identity) is checked against the source SHA-256 of the output."""
    import shutil

    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    a, b = mock_emg_nwb(data / "a.nwb", seed=1, **EMG), mock_emg_nwb(data / "b.nwb", seed=2, **EMG)
    args = ["run", str(data), "-o", str(out), "--preset", "smoke", "-q", "--set", "train.threads=1"]
    assert "2 done, 0 failed" in _summary(capsys, args)

    def source_sha(name):
        return nwb_autolfads.load_results(out / f"{name}_autolfads.nwb").attrs["source_file_sha256"]

    b_result = (out / "b_autolfads.nwb").stat().st_mtime_ns
    a_before = file_sha256(out / "a_autolfads.nwb")
    mock_emg_nwb(a, seed=3, **EMG)  # other data under the same name
    assert "1 done (1 earlier), 0 failed, 0 skipped, 1 kept out of date" in _summary(capsys, args, code=1)
    assert file_sha256(out / "a_autolfads.nwb") == a_before  # kept: never replaced without --overwrite
    assert "2 done (1 earlier)" in _summary(capsys, [*args, "--overwrite"])
    assert source_sha("a") == file_sha256(a) and (out / "b_autolfads.nwb").stat().st_mtime_ns == b_result
    shutil.rmtree(out / "b_autolfads.autolfads-model")
    assert "its model folder b_autolfads.autolfads-model is missing or changed (the result is kept" in \
        _summary(capsys, [*args, "--dry-run"])
    assert "2 done (2 earlier)" in _summary(capsys, args)
    assert (out / "b_autolfads.nwb").stat().st_mtime_ns == b_result and not (out / "b_autolfads.autolfads-model").exists()
    rows = {r["name"]: r for r in json.loads((out / "autolfads-manifest.json").read_text())["assets"]}
    assert rows["a.nwb"]["input_sha256"] == file_sha256(a) and rows["a.nwb"]["size"] == a.stat().st_size
    # an earlier version's manifest: b's output still names b's SHA-256 (kept), a's does not (run again)
    manifest = json.loads((out / "autolfads-manifest.json").read_text())
    for row in manifest["assets"]:
        row.pop("input_sha256"), row.pop("input_mtime_ns")
    (out / "autolfads-manifest.json").write_text(json.dumps(manifest))
    mock_emg_nwb(a, seed=4, **EMG)
    assert "2 done (1 earlier)" in _summary(capsys, [*args, "--overwrite"])
    assert source_sha("a") == file_sha256(a) and source_sha("b") == file_sha256(b)


def test_a_replaced_session_trains_its_subjects_model_again(tmp_path, capsys):
    """--multi-session over files whose paths name no subject: grouped by their subject_id (two
    animals, two models); a session file replaced trains its subject's model again, not the other's."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for name, subject, seed in (("a", "rat1", 1), ("b", "rat1", 2), ("c", "rat2", 3)):
        mock_emg_nwb(data / f"{name}.nwb", seed=seed, session={"subject_id": subject}, **EMG)
    args = ["run", str(data), "-o", str(out), "--multi-session", "--preset", "smoke", "-q", "--set",
            "train.threads=1"]
    assert "3 done, 0 failed" in _summary(capsys, args)

    def rows():
        return {r["name"]: r for r in json.loads((out / "autolfads-manifest.json").read_text())["assets"]}

    first = rows()
    assert first["a.nwb"]["model"] == first["b.nwb"]["model"] != first["c.nwb"]["model"]
    mock_emg_nwb(data / "b.nwb", seed=5, session={"subject_id": "rat1"}, **EMG)
    assert "1 done (1 earlier), 0 failed, 0 skipped, 2 kept out of date" in _summary(capsys, args, code=1)
    assert rows() == {**first, "a.nwb": {**first["a.nwb"], "status": "kept", "reason": rows()["a.nwb"]["reason"]},
                      "b.nwb": {**first["b.nwb"], "status": "kept", "reason": rows()["b.nwb"]["reason"]}}
    assert "its subject's model would replace earlier results (b.nwb: its input changed" in rows()["a.nwb"]["reason"]
    assert "3 done (1 earlier)" in _summary(capsys, [*args, "--overwrite"])
    second = rows()
    assert second["a.nwb"]["model_sha256"] == second["b.nwb"]["model_sha256"] != first["a.nwb"]["model_sha256"]
    assert second["c.nwb"] == first["c.nwb"]
    assert nwb_autolfads.load_results(out / "b_autolfads.nwb").attrs["source_file_sha256"] == \
        file_sha256(data / "b.nwb")


def test_sigterm_stops_a_batch_with_jobs_and_its_jobs_promptly(tmp_path):
    """A tester's report: SIGTERM to ``run FOLDER --jobs 2`` printed "terminated" and then waited
    for ever while both jobs kept training (and the queued third input was started too)."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for k in range(3):
        mock_emg_nwb(data / f"r{k}.nwb", seed=k, **EMG)
    cmd = [sys.executable, "-m", "nwb_autolfads", "run", str(data), "-o", str(out), "--jobs", "2", "--preset", "smoke",
           "-q", "--set", "pbt.generation_steps=2000", "--set", "pbt.max_generations=50", "--set", "train.threads=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(list(out.glob(".*.rundir"))) < 2:  # both jobs are training
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM); the inputs finished are kept" in err
    assert len(list(out.glob(".*.rundir"))) == 2  # the two interrupted runs' state, for the same command
    time.sleep(1.0)
    assert subprocess.run(["pgrep", "-f", str(data)], capture_output=True).stdout == b""  # no job left running
