"""--in-place is atomic: kill -9 at random moments never leaves the source corrupted."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
from pynwb import NWBHDF5IO

from nwb_autolfads.testing import mock_emg_nwb

WRITER = textwrap.dedent("""
    import sys
    from nwb_autolfads.testing import mock_run_record
    from nwb_autolfads.io.writing import file_sha256, write_results
    path = sys.argv[1]
    for k in range(100):
        record = mock_run_record(n_bins=3000, n_channels=8, name=f"run{k}")
        record.source_sha256 = file_sha256(path)
        write_results(path, None, record, in_place=True)
        print(k, flush=True)
""")


def _runs_in(path):
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert nwb.acquisition["EMG"].data.shape == (20000, 4)  # the source content is intact
        module = nwb.processing.get("autolfads")
        runs = {} if module is None else dict(module.data_interfaces)
        for run in runs.values():  # every run present is complete
            assert run.emg_activations.data.shape == (3000, 8) and run.factors.data.shape == (3000, 4)
            assert np.all(np.isfinite(run.factors.data[:]))
        return len(runs)


def test_kill_9_during_in_place_writes_leaves_the_source_whole(tmp_path):
    path = mock_emg_nwb(tmp_path / "src.nwb", duration=10.0, rate=2000.0, n_muscles=4, seed=0)
    rng = np.random.default_rng(0)
    count = 0
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        # after its first write (imports take 3-4 s on a slow machine: a fixed sleep could end before any
        # write), then at a random moment among the next writes
        first = proc.stdout.readline()
        time.sleep(float(rng.uniform(0.0, 2.5)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        written = len((first + proc.stdout.read()).split())
        now = _runs_in(path)
        # every write the process reported is there; at most one more (killed between the rename and the print)
        assert count + written <= now <= count + written + 1
        count = now
    assert count > 0, "no write completed: the test did not exercise the writer"
    # the killed writers' temporary files are removed by the next write
    subprocess.run([sys.executable, "-c", WRITER.replace("range(100)", "range(1)"), str(path)], check=True,
                   capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.nwb"]
