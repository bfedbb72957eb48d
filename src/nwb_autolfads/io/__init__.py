"""NWB in and out: where a recording is (local, URL, DANDI), finding and reading its series,
units, trials and behaviour, inspecting a file, writing results and provenance, reading them back.

May import: pynwb, hdmf, h5py, numpy, scipy, xarray and :mod:`nwb_autolfads.errors`,
:mod:`~nwb_autolfads.config`, :mod:`~nwb_autolfads.ndx`, :mod:`~nwb_autolfads.data`. Never torch.
"""
