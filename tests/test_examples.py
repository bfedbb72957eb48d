"""The examples and the README's example command run as documented."""

import subprocess
import sys
from pathlib import Path

from pynwb import NWBHDF5IO

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_python_example_runs_and_plots(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "synthetic_emg_example.py"), "--preset", "smoke",
                           "--duration", "15", "--outdir", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "example_traces.png").stat().st_size > 10_000
    assert "correlation with the true activation" in proc.stdout
    with NWBHDF5IO(str(tmp_path / "synthetic_emg_autolfads.nwb"), "r") as io:
        run, = io.read().processing["autolfads"].data_interfaces.values()
        assert run.emg_activations.data.shape == (1500, 12)


def test_cli_example_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", "--example", "--preset", "smoke", "-q"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "autolfads_example.nwb").exists()
    assert (tmp_path / "autolfads_example_autolfads.nwb").exists()
    assert "autolfads_example_autolfads.nwb" in proc.stdout
    assert "correlation with the true activations" in proc.stdout
    # running it again never replaces the result silently (it may be an hours-long one): --overwrite does
    again = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", "--example", "--preset", "smoke", "-q"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    again = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", "--example", "--preset", "smoke", "-q",
                            "--overwrite"], capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
