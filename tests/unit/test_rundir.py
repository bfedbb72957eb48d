"""The run directory's guard across versions: a setting added since an interrupted run was
written reads as its default (so the run resumes), and a real difference is still refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nwb_autolfads.config import build_config
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.rundir import RUN_FINGERPRINT, prepare_rundir


def _earlier_version_rundir(tmp_path, cfg, segments):
    """The run directory an earlier version (no ``model.min_factors``) left for ``cfg``."""
    rundir = tmp_path / "run.autolfads-run"
    prepare_rundir(rundir, cfg, segments, explicit=False)
    fingerprint = json.loads((rundir / RUN_FINGERPRINT).read_text())
    del fingerprint["config"]["model"]["min_factors"]
    (rundir / RUN_FINGERPRINT).write_text(json.dumps(fingerprint))
    (rundir / "model_state.pt").write_bytes(b"hours of training")
    return rundir


def test_an_interrupted_run_of_an_earlier_version_resumes_when_the_new_setting_has_its_default(tmp_path, caplog):
    segments = [np.ones((20, 3), np.float32)]
    cfg = build_config("default")
    rundir = _earlier_version_rundir(tmp_path, cfg, segments)
    with caplog.at_level("WARNING"):
        prepare_rundir(rundir, cfg, segments, explicit=False)
    assert "resuming the interrupted run" in caplog.text
    assert (rundir / "model_state.pt").read_bytes() == b"hours of training"


def test_an_interrupted_run_of_an_earlier_version_is_refused_when_the_new_setting_differs(tmp_path):
    segments = [np.ones((20, 3), np.float32)]
    rundir = _earlier_version_rundir(tmp_path, build_config("default"), segments)
    with pytest.raises(ConfigError, match=r"model.min_factors: 2 -> 8"):
        prepare_rundir(rundir, build_config("default", overrides={"model.min_factors": 8}), segments, explicit=False)
    assert (rundir / "model_state.pt").read_bytes() == b"hours of training"
