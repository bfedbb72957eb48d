"""Training: the optimisation loop and its objective, devices and threads, CUDA graphs, the
resource plan, training in isolated processes, stacked members, and population-based training
(:mod:`.pbt`).

May import: torch, numpy and :mod:`nwb_autolfads.errors`, :mod:`~nwb_autolfads.config`,
:mod:`~nwb_autolfads.data`, :mod:`~nwb_autolfads.model`; Ray only in :mod:`.pbt.ray_cluster` (imported and connected there for :mod:`.pbt.ray_executor`).
Never pynwb.
"""
