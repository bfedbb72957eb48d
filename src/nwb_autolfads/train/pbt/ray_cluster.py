"""Ray, imported and connected in one place: for the Ray executor of population-based training
(:mod:`.ray_executor`) and for a batch's inputs run as Ray tasks (:mod:`nwb_autolfads.batch_ray`).

Without an address a private local instance is started (127.0.0.1, one CPU per available core,
no dashboard) and stopped by whoever started it; with one (``HEAD:6379`` or ``auto``) the running
cluster is joined. Torch-free, so a batch's driver does not import torch to hand out tasks.

May import: ray, :mod:`nwb_autolfads.errors`, :mod:`nwb_autolfads.train.resources`.
"""

from __future__ import annotations

import logging
import os

from nwb_autolfads.errors import ConfigError

__all__ = ["import_ray", "connect"]


def import_ray(why: str):
    """The ``ray`` module, with its logging quietened. ``why``: what needs Ray and what to do
    instead, for the message when it is missing.

    Raises
    ------
    ConfigError
        Ray is not installed (the message names the extra to install).
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"{why} needs Ray: pip install \"nwb-autolfads[ray]\" ({exc})") from None
    return ray


def connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a private local instance without one; nothing
    when Ray is already initialised in this process. Returns whether this call started it (then
    the caller shuts it down: ``ray.shutdown()``)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        from nwb_autolfads.train.resources import available_cores

        ray.init(num_cpus=available_cores(), include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    return True
