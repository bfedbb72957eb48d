"""Synthetic recordings with ground truth, for tests, examples and benchmarks.

- :mod:`nwb_autolfads.simulate.emg`: multi-muscle EMG whose true activations and the joint
  angles they drive are known, varied along the axes real EMG varies (:class:`EMGSetting`,
  :func:`simulate_emg`, :func:`write_setting_nwb`).
- :mod:`nwb_autolfads.simulate.family`: the benchmark family of such settings and its fixed
  tuning / held-out split (:func:`emg_family`, :func:`split`).
- :mod:`nwb_autolfads.simulate.spikes`: spiking populations driven by a chaotic RNN (the LFADS
  paper's first synthetic experiment), a Lorenz system or rotational dynamics, with their true
  rates (:class:`SpikeSetting`, :func:`simulate_spikes`, :func:`write_spikes_nwb`).
- :mod:`nwb_autolfads.simulate.sessions`: several sessions of one subject sharing their latent
  dynamics but differing in muscles, gains and noise, one DANDI-named NWB file each
  (:class:`SessionsSetting`, :func:`simulate_sessions`, :func:`write_sessions_nwb`).
"""

from nwb_autolfads.simulate.emg import DYNAMICS, EMGSetting, SyntheticEMG, kinematics_from, simulate_emg, write_setting_nwb
from nwb_autolfads.simulate.family import FAMILY_SEED, emg_family, split
from nwb_autolfads.simulate.sessions import SessionsSetting, SyntheticSessions, simulate_sessions, write_sessions_nwb
from nwb_autolfads.simulate.spikes import SpikeSetting, simulate_spikes, write_spikes_nwb

__all__ = ["DYNAMICS", "EMGSetting", "SyntheticEMG", "kinematics_from", "simulate_emg", "write_setting_nwb",
           "FAMILY_SEED", "emg_family", "split",
           "SessionsSetting", "SyntheticSessions", "simulate_sessions", "write_sessions_nwb", "SpikeSetting", "simulate_spikes", "write_spikes_nwb"]
