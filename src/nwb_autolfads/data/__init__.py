"""Signals between the file and the model: the signal containers and their time bases, EMG
preprocessing (filters, scans, artefacts), binning, and chopping into overlapping windows and
merging them back.

May import: numpy, scipy, tqdm (progress) and :mod:`nwb_autolfads.errors`,
:mod:`~nwb_autolfads.config`. Never torch or pynwb.
"""
