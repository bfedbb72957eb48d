"""Population-based training (AutoLFADS): the embedded executor (sequential, stacked or worker
processes) and the Ray executor.

May import what :mod:`nwb_autolfads.train` may, and Ray (only :mod:`.ray_cluster`, which :mod:`.ray_executor` uses).
"""
