import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# pynwb/hdmf/dandi write caches under HOME: keep them in a throwaway directory.
_CACHE = tempfile.mkdtemp(prefix="nwb-autolfads-tests-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = os.path.join(_CACHE, "cache")
os.environ["XDG_STATE_HOME"] = os.path.join(_CACHE, "state")
os.environ.setdefault("MPLBACKEND", "Agg")

from nwb_autolfads.testing import mock_emg_nwb  # noqa: E402

SHARED_NWB = Path(__file__).parent / "data" / "nwb"


@pytest.fixture(scope="session")
def emg_file(tmp_path_factory) -> Path:
    """20 s of raw 6-muscle EMG at 2 kHz (TimeSeries in acquisition, with ground truth)."""
    path = tmp_path_factory.mktemp("emg") / "emg.nwb"
    return mock_emg_nwb(path, duration=20.0, rate=2000.0, n_muscles=6, seed=1)


@pytest.fixture()
def emg_copy(emg_file, tmp_path) -> Path:
    """A private copy of :func:`emg_file` in a fresh directory (outputs land beside it)."""
    dst = tmp_path / "emg.nwb"
    dst.write_bytes(emg_file.read_bytes())
    return dst
