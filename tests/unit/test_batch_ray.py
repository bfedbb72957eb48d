"""nwb_autolfads.batch_ray and the Ray side of nwb_autolfads.batch, without starting Ray: what a run's
task asks for, the tasks in flight, the plan (absolute output folder, a warning for a remote
cluster), a missing Ray, and the driver recording the tasks' outcomes (a fake in Ray's place)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import nwb_autolfads.batch_ray as batch_ray
from nwb_autolfads.batch import run_batch
from nwb_autolfads.batch_ray import RayTasks, is_remote, run_resources
from nwb_autolfads.cli import main
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.testing import mock_emg_nwb


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    for sub in ("sub-A", "sub-B"):
        (data / sub).mkdir(parents=True)
        mock_emg_nwb(data / sub / f"{sub}_ses-1_ecephys.nwb", duration=3.0, rate=1000.0, n_muscles=3)
    return data


@pytest.mark.parametrize("population, workers, threads, device, cpus, told, gpus", [
    (20, 0, 0, None, 1, (1, 1), 0),      # auto: one stacked program on one thread per run
    (8, 4, 2, "cpu", 8, (4, 2), 0),      # what the user gives a run, it gets (and is told to use)
    (1, 4, 3, None, 3, (1, 3), 0),       # one model: no worker processes
    (2, 0, 0, "cuda:1", 1, (1, 1), 1),   # a GPU each; in the task the GPU Ray gives it is "cuda"
])
def test_a_runs_task_asks_for_the_cpus_the_run_is_told_to_use(population, workers, threads, device, cpus, told,
                                                               gpus):
    res = run_resources({"pbt": {"population": population, "workers": workers, "backend": "ray"},
                         "train": {"threads": threads}}, device)
    assert (res.cpus, res.gpus, res.device) == (cpus, gpus, "cuda" if gpus else "cpu")
    assert res.overrides == {"pbt.backend": "embedded", "pbt.workers": told[0], "train.threads": told[1]}


def test_the_tasks_in_flight_are_the_clusters_cpus_per_run_unless_jobs_is_given():
    tasks = RayTasks.__new__(RayTasks)
    tasks.ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0, "GPU": 2.0})
    four = run_resources({"pbt": {"population": 8, "workers": 4}, "train": {"threads": 1}}, None)
    assert tasks.slots(None, four) == (4, "the cluster's 16 CPU(s) / 4 CPU(s) per run")
    assert tasks.slots(3, four)[0] == 3
    assert tasks.slots(None, run_resources({"pbt": {}, "train": {}}, "cuda"))[0] == 2  # at most one run per GPU
    tasks.ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 2.0})
    assert tasks.slots(None, four)[0] == 1  # a run bigger than the cluster still runs (Ray queues it)


def test_which_ray_addresses_may_name_other_machines():
    assert not any(map(is_remote, [None, "", "127.0.0.1:6379", "localhost:6379", "ray://127.0.0.1:10001"]))
    assert is_remote("10.0.0.9:6379") and is_remote("head.cluster.org:6379") and is_remote("auto")


def test_a_missing_ray_is_one_line_naming_the_extra(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "nwb-autolfads\[ray\]"'):
        RayTasks()
    assert main(["run", str(folder), "-o", str(tmp_path / "out"), "--backend", "ray", "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'pip install "nwb-autolfads[ray]"' in err
    assert not (tmp_path / "out").exists()


def test_the_plan_on_ray_has_an_absolute_output_folder_and_warns_for_a_remote_cluster(folder, tmp_path, monkeypatch,
                                                                                        capsys):
    monkeypatch.setattr(batch_ray, "import_ray", lambda: None)  # a dry run starts no Ray
    monkeypatch.chdir(tmp_path)
    assert main(["run", "data", "-o", "out", "--ray-address", "10.0.0.9:6379", "--multi-session", "--jobs", "2",
                 "--preset", "smoke", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert f"output      {tmp_path / 'out'}" in captured.out
    assert "execution   Ray tasks on 10.0.0.9:6379, one per subject's model, 1 CPU(s) each" in captured.out
    assert f"the output folder {tmp_path / 'out'} and the local inputs must be reachable" in captured.err
    assert main(["run", "data", "-o", "out", "--ray-address", "127.0.0.1:6379", "--preset", "smoke",
                 "--dry-run"]) == 0
    assert "reachable" not in capsys.readouterr().err  # this machine: no warning
    assert main(["run", "data", "-o", "out", "--multi-session", "--jobs", "2", "--dry-run"]) == 2  # locally refused
    assert not (tmp_path / "out").exists()


class _FakeRay:
    """In Ray's place: task 0 runs here, every later task's worker dies."""

    calls: list = []

    def __init__(self, address):
        self.address = address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def slots(self, jobs, res):
        return jobs or 2, "fake"

    def map(self, fn, calls, *, jobs, res, started, finished):
        _FakeRay.calls = list(calls)
        for k, call in enumerate(calls):
            started(k)
            if k == 0:
                finished(k, fn(*call), "")
            else:
                finished(k, None, "WorkerCrashedError: the worker died unexpectedly")


def test_the_driver_records_each_tasks_outcome_and_a_dead_task_fails_its_input(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_ray, "import_ray", lambda: None)
    monkeypatch.setattr(batch_ray, "RayTasks", _FakeRay)
    monkeypatch.chdir(tmp_path)
    result = run_batch(["data"], "out", preset="smoke", backend="ray", progress=False,
                       overrides={"train.threads": 1, "pbt.backend": "ray", "pbt.ray_address": "auto"})
    inputs, outputs, kwargs, root = _FakeRay.calls[0]
    assert inputs == [str(folder / "sub-A" / "sub-A_ses-1_ecephys.nwb")] and Path(outputs[0]).is_absolute()
    assert root == str(tmp_path / "out")
    assert kwargs["overrides"]["pbt.backend"] == "embedded" and kwargs["device"] == "cpu" and not kwargs["progress"]
    rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "autolfads-manifest.json").read_text())["assets"]}
    assert rows["sub-A/sub-A_ses-1_ecephys.nwb"]["status"] == "done"
    assert rows["sub-A/sub-A_ses-1_ecephys.nwb"]["model"] == "sub-A/sub-A_ses-1_desc-autolfads_emg.autolfads-model"
    dead = rows["sub-B/sub-B_ses-1_ecephys.nwb"]
    assert dead["status"] == "failed" and "its Ray task failed (WorkerCrashedError" in dead["reason"]
    assert result.exit_code == 1 and result.count("done") == 1
