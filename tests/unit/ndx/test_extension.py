"""The ndx-autolfads spec: built by spec/build_spec.py, valid, shipped, and round-tripping every type."""

import subprocess
import sys
import warnings

from pathlib import Path

import numpy as np
import pytest
from pynwb import TimeSeries
from pynwb.testing import NWBH5IOFlexMixin, TestCase

from nwb_autolfads.ndx.namespace import (NAMESPACE, SPEC_VERSION, AutoLFADSRun, FiringRates, MuscleActivations,
                                     namespace_path)
from nwb_autolfads.testing import mock_run_record
from nwb_autolfads.io.writing import build_run

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "spec"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the pynwb mixins write their files to the working directory


def test_committed_yaml_is_what_the_script_builds(tmp_path):
    sys.path.insert(0, str(SPEC))
    try:
        import build_spec
    finally:
        sys.path.remove(str(SPEC))
    build_spec.main(tmp_path)
    for name in ("ndx-autolfads.namespace.yaml", "ndx-autolfads.extensions.yaml"):
        assert (tmp_path / name).read_text() == (SPEC / name).read_text(), f"{name}: run python spec/build_spec.py"
    assert build_spec.VERSION == SPEC_VERSION


def test_spec_validates_against_the_nwb_meta_schema():
    import pynwb
    meta = Path(pynwb.__file__).parent / "nwb-schema" / "nwb.schema.json"
    files = sorted(str(p) for p in SPEC.glob("ndx-autolfads.*.yaml"))
    proc = subprocess.run([sys.executable, "-m", "hdmf.testing.validate_spec", "-m", str(meta), *files],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_loaded_namespace_is_the_shipped_one():
    path = namespace_path()
    assert path.name == "ndx-autolfads.namespace.yaml"
    # an installed wheel reads nwb_autolfads/spec/, a checkout reads spec/: both hold the committed YAML
    assert path.read_text() == (SPEC / path.name).read_text()
    from pynwb import get_type_map
    assert NAMESPACE in get_type_map().namespace_catalog.namespaces


class TestMuscleActivationsIO(NWBH5IOFlexMixin, TestCase):
    def getContainerType(self):
        return "MuscleActivations"

    def addContainer(self):
        module = self.nwbfile.create_processing_module("autolfads", "results")
        module.add(MuscleActivations(name="emg_activations", data=np.random.default_rng(1).random((50, 3)).astype(
            np.float32), unit="volts", channel_names=["TA", "MG", "Sol"], scales=np.array([1e-4, 2e-4, 3e-4]),
            rate=100.0, starting_time=0.005, description="activations"))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["emg_activations"]


class TestMuscleActivationsWithIntervalIO(NWBH5IOFlexMixin, TestCase):
    """Since 0.3.0: the bounds of a credible interval and its probability."""

    def getContainerType(self):
        return "MuscleActivations"

    def addContainer(self):
        data = np.random.default_rng(1).random((50, 3)).astype(np.float32)
        module = self.nwbfile.create_processing_module("autolfads", "results")
        module.add(MuscleActivations(name="emg_activations", data=data, unit="volts", channel_names=["TA", "MG", "Sol"],
                                     lower=0.5 * data, upper=1.5 * data, credible_interval=0.9, rate=100.0, starting_time=0.005,
                                     description="activations"))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["emg_activations"]


class TestFiringRatesWithIntervalIO(NWBH5IOFlexMixin, TestCase):
    def getContainerType(self):
        return "FiringRates"

    def addContainer(self):
        module = self.nwbfile.create_processing_module("autolfads", "results")
        module.add(FiringRates(name="firing_rates", data=np.ones((20, 2), np.float32), unit="Hz",
                               unit_ids=np.array([7, 2]), lower=np.zeros((20, 2), np.float32),
                               upper=np.full((20, 2), 3.0, np.float32), credible_interval=0.5, rate=100.0, starting_time=0.0,
                               description="rates"))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["firing_rates"]


class TestFiringRatesIO(NWBH5IOFlexMixin, TestCase):
    def getContainerType(self):
        return "FiringRates"

    def addContainer(self):
        from hdmf.common import DynamicTableRegion
        for k in range(4):
            self.nwbfile.add_unit(spike_times=[0.1 * k, 0.5])
        module = self.nwbfile.create_processing_module("autolfads", "results")
        region = DynamicTableRegion(name="units", data=[3, 1], description="modelled units", table=self.nwbfile.units)
        module.add(FiringRates(name="firing_rates", data=np.ones((20, 2), np.float32), unit="Hz", units=region,
                               rate=100.0, starting_time=0.0, description="rates"))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["firing_rates"]


class TestFiringRatesByIdIO(NWBH5IOFlexMixin, TestCase):
    """Rates of units whose table is not in the file (a results-only file): by id alone."""

    def getContainerType(self):
        return "FiringRates"

    def addContainer(self):
        module = self.nwbfile.create_processing_module("autolfads", "results")
        module.add(FiringRates(name="firing_rates", data=np.ones((20, 2), np.float32), unit="Hz",
                               unit_ids=np.array([7, 2]), rate=100.0, starting_time=0.0, description="rates"))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["firing_rates"]


class TestAutoLFADSRunIO(NWBH5IOFlexMixin, TestCase):
    """Every field of a run: EMG activations, firing rates, factors, inputs, initial conditions,
    training curves, PBT history, the link to the source EMG, and the provenance."""

    def getContainerType(self):
        return "AutoLFADSRun"

    def addContainer(self):
        self.nwbfile.add_acquisition(TimeSeries(
            name="EMG", data=np.random.default_rng(0).normal(size=(400, 6)), unit="volts", rate=1000.0))
        for k in range(5):
            self.nwbfile.add_unit(spike_times=np.sort(np.random.default_rng(k).uniform(0, 1, 20)))
        record = mock_run_record(n_bins=40, n_channels=6, unit_ids=[4, 0, 2],
                                 emg_object_id=self.nwbfile.acquisition["EMG"].object_id, name="run_a", interval=0.9)
        record.git_revision = "abc123"
        module = self.nwbfile.create_processing_module("autolfads", "results")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Units region is made before the run joins the file
            module.add(build_run(self.nwbfile, record))

    def getContainer(self, nwbfile):
        return nwbfile.processing["autolfads"]["run_a"]

    def test_fields_after_round_trip(self):
        run = self.roundtripContainer()
        assert isinstance(run, AutoLFADSRun)
        assert run.source_emg is self.read_nwbfile.acquisition["EMG"]
        assert list(run.firing_rates.units.data[:]) == [4, 0, 2] == list(run.firing_rates.unit_ids[:])
        assert run.firing_rates.units.table is self.read_nwbfile.units
        assert len(run.pbt_history) == 6 and "parent_member" in run.pbt_history.colnames
        assert list(run.training_curves["step"].data[:]) == [10, 20, 30, 40, 50]
        assert run.initial_conditions is None and len(run.window_initial_conditions) == 2
        assert run.window_initial_conditions["initial_condition"].data[:].shape[0] == 2
        assert run.git_revision == "abc123" and run.random_seed == 0
        assert run.emg_activations.credible_interval == 0.9 == run.firing_rates.credible_interval
        assert run.emg_activations.lower.shape == (40, 6) and run.firing_rates.upper.shape == (40, 3)
