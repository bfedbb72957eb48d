"""Mock-data factories: synthetic recordings with known ground truth, written to NWB.

Used by the tests, the examples, ``nwb-autolfads run --example`` and the benchmarks
(docs/science.md, Synthetic data). Every public factory is importable from here:

- :mod:`.emg`: raw EMG of muscles driven by a Lorenz latent (:func:`synthetic_emg`,
  :func:`write_emg_nwb`, :func:`mock_emg_nwb`), EMG of bumps at known times (:func:`bump_emg`, :func:`bump_lags`),
  already binned EMG of separate cycles, and long
  recordings written block by block (:func:`chunked_emg_nwb`);
- :mod:`.spikes`: Lorenz-driven spikes, long spike recordings, faulty spike times;
- :mod:`.results`: a run record of random numbers, ground truth read into bins;
- :mod:`.windows`: model-ready windows; :mod:`.common`: what the factories share.
"""

from nwb_autolfads.testing.common import lorenz_latent
from nwb_autolfads.testing.emg import (BUMP_PEAKS_S, DEFAULT_MUSCLES, BinnedCycles, SyntheticEMG, behavior_from,
                                       binned_cycles, bump_emg, bump_lags, chunked_emg_nwb, mock_binned_trials_nwb,
                                       mock_emg_nwb, synthetic_emg, write_emg_nwb)
from nwb_autolfads.testing.results import mock_run_record, read_truth
from nwb_autolfads.testing.spikes import SPIKE_FAULTS, LorenzSpikes, chunked_spikes_nwb, lorenz_spikes, spike_fault
from nwb_autolfads.testing.windows import gamma_windows
from nwb_autolfads.testing.windows import gamma_session_windows

__all__ = ["SyntheticEMG", "lorenz_latent", "synthetic_emg", "write_emg_nwb", "mock_emg_nwb", "read_truth", "behavior_from",
           "LorenzSpikes", "lorenz_spikes", "gamma_windows", "spike_fault", "SPIKE_FAULTS",
           "BinnedCycles", "binned_cycles", "mock_binned_trials_nwb",
           "DEFAULT_MUSCLES", "chunked_emg_nwb", "chunked_spikes_nwb", "mock_run_record", "bump_emg", "bump_lags",
           "BUMP_PEAKS_S"]
__all__.append("gamma_session_windows")
