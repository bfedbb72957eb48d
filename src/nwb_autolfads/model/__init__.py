"""The LFADS model: its recurrences, observation models, augmentations and inference (posterior
means and samples over chopped windows, merged back onto the recording's bins).

May import: torch, numpy and :mod:`nwb_autolfads.errors`, :mod:`~nwb_autolfads.config`,
:mod:`~nwb_autolfads.data`. Never pynwb (the model never touches NWB). :mod:`.registry` (the
names and metadata of the observation models) imports only :mod:`~nwb_autolfads.errors`: the
configuration reads it without torch.
"""
