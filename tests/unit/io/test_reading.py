import h5py
import numpy as np
import pytest

from nwb_autolfads.errors import InputFileError
from nwb_autolfads.io.reading import open_nwb


def test_input_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        with open_nwb(tmp_path / "missing.nwb"):
            pass
    with pytest.raises(InputFileError, match="directory"):
        with open_nwb(tmp_path):
            pass
    text = tmp_path / "text.nwb"
    text.write_text("hello")
    with pytest.raises(InputFileError, match="not an HDF5"):
        with open_nwb(text):
            pass
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputFileError, match="not NWB"):
        with open_nwb(plain):
            pass
