"""A batch's inputs as Ray tasks (``--backend ray``, nwb_autolfads.batch_ray) on a private local Ray
instance bound to 127.0.0.1, started and shut down by the batch: the same results as the batch run
one by one, a failing input recorded failed, and a rerun that skips the finished inputs."""

import json

import pytest

ray = pytest.importorskip("ray")

import nwb_autolfads  # noqa: E402
from nwb_autolfads.cli import main  # noqa: E402
from nwb_autolfads.io.writing import file_sha256  # noqa: E402
from nwb_autolfads.testing import mock_emg_nwb  # noqa: E402

EMG = {"duration": 3.0, "rate": 1000.0, "n_muscles": 3}


def _rows(out):
    return {r["name"]: r for r in json.loads((out / "autolfads-manifest.json").read_text())["assets"]}


def test_a_batch_on_ray_gives_the_results_of_the_batch_run_one_by_one(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "data"
    for sub in ("sub-J1", "sub-J2", "sub-J3"):
        (folder / sub).mkdir(parents=True)
    for sub in ("sub-J1", "sub-J2"):
        mock_emg_nwb(folder / sub / f"{sub}_ses-1_ecephys.nwb", seed=int(sub[-1]), **EMG)
    (folder / "sub-J3" / "sub-J3_ses-1_ecephys.nwb").write_text("not hdf5")  # fails when it is opened
    monkeypatch.chdir(tmp_path)  # relative paths: a Ray task runs in another working directory
    common = ["--preset", "smoke", "-q", "--set", "train.threads=1"]
    assert main(["run", "data", "-o", "one", *common]) == 1
    capsys.readouterr()
    assert main(["run", "data", "-o", "ray", "--backend", "ray", *common]) == 1
    assert not ray.is_initialized()  # the private instance is shut down
    summary = capsys.readouterr().out
    assert "2 done, 1 failed" in summary and str(tmp_path / "ray") in summary
    one, on_ray = _rows(tmp_path / "one"), _rows(tmp_path / "ray")
    assert {n: r["status"] for n, r in on_ray.items()} == {n: r["status"] for n, r in one.items()} == {
        "sub-J1/sub-J1_ses-1_ecephys.nwb": "done", "sub-J2/sub-J2_ses-1_ecephys.nwb": "done",
        "sub-J3/sub-J3_ses-1_ecephys.nwb": "failed"}
    assert "not an HDF5 file" in on_ray["sub-J3/sub-J3_ses-1_ecephys.nwb"]["reason"]
    for name in ("sub-J1/sub-J1_ses-1_ecephys.nwb", "sub-J2/sub-J2_ses-1_ecephys.nwb"):
        row = on_ray[name]
        assert row["output"] == one[name]["output"] and row["model"] == one[name]["model"]  # relative to the folder
        assert file_sha256(tmp_path / "ray" / row["output"]) == row["output_sha256"]  # the driver's record
        assert (tmp_path / "ray" / row["model"] / "model.safetensors").is_file()
        a = nwb_autolfads.load_results(tmp_path / "one" / row["output"]).emg_activations.values
        b = nwb_autolfads.load_results(tmp_path / "ray" / row["output"]).emg_activations.values
        assert a.shape == b.shape and (a == b).all(), name

    first = tmp_path / "ray" / on_ray["sub-J1/sub-J1_ses-1_ecephys.nwb"]["output"]
    stamp = (file_sha256(first), first.stat().st_mtime_ns)
    assert main(["run", "data", "-o", "ray", "--backend", "ray", *common]) == 1  # the failed one is retried
    assert "2 done (2 earlier), 1 failed" in capsys.readouterr().out
    assert (file_sha256(first), first.stat().st_mtime_ns) == stamp  # a finished input is not run again
    assert not ray.is_initialized()
