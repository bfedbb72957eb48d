"""Write the back-compatibility fixture for the current ndx-autolfads spec version.

    python tests/data/results/make_fixture.py

Run once per released spec version and commit the file it writes
(``ndx-autolfads-<version>.nwb``): the tests read every committed fixture with the current code.
"""

import sys
import tempfile
from pathlib import Path

import nwb_autolfads
from nwb_autolfads.ndx.namespace import SPEC_VERSION
from nwb_autolfads.testing import mock_emg_nwb


def main() -> Path:
    here = Path(__file__).parent
    out = here / f"ndx-autolfads-{SPEC_VERSION}.nwb"
    with tempfile.TemporaryDirectory() as tmp:
        src = mock_emg_nwb(Path(tmp) / "sub-F1_ses-1_ecephys.nwb", duration=6.0, rate=500.0, n_muscles=2, n_units=3,
                           seed=5)
        nwb_autolfads.run(src, out, preset="smoke", overwrite=True, progress=False, run_name="fixture",
                          overrides={"data.model": "emg+spikes",
                                     # posterior samples: the credible interval's bounds too (spec 0.3.0)
                                     "inference.mode": "sample", "inference.n_samples": 8},
                          command="python tests/data/results/make_fixture.py",
                          # the model folder is not kept beside the fixture; the run records where it was (0.5.0)
                          save_model=Path(tmp) / "fixture.autolfads-model")
    return out


if __name__ == "__main__":
    print(f"wrote {main()}")
    sys.exit(0)
