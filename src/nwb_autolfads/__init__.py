"""nwb-autolfads: AutoLFADS estimates of muscle activation from EMG in NWB files.

Main entry points::

    import nwb_autolfads
    result = nwb_autolfads.run("session.nwb", preset="quick")
    print(result.summary())

See :func:`run`, :class:`RunConfig` / :func:`build_config` and :mod:`nwb_autolfads.testing`.
The NWB stack (pynwb, hdmf, h5py) is imported only when something that needs it is used, so
the model modules stay light.
"""

__version__ = "0.1.0"

from .config import PRESETS, RunConfig, build_config  # noqa: E402
from .errors import NwbAutolfadsError  # noqa: E402

__all__ = ["__version__", "run", "RunResult", "RunConfig", "build_config", "PRESETS", "NwbAutolfadsError"]


def __getattr__(name):  # PEP 562: import the pipeline (and pynwb) on first use
    if name in ("run", "RunResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'nwb_autolfads' has no attribute {name!r}")
