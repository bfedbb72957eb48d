"""nwb-autolfads: AutoLFADS estimates of muscle activation from EMG in NWB files.

Main entry points::

    import nwb_autolfads
    result = nwb_autolfads.run("session.nwb", preset="quick")
    print(result.summary())

See :func:`run`, :class:`RunConfig` / :func:`build_config` and :mod:`nwb_autolfads.testing`.
"""

__version__ = "0.1.0"

from .config import RunConfig, build_config, PRESETS  # noqa: E402
from .errors import NwbAutolfadsError  # noqa: E402
from .pipeline import RunResult, run  # noqa: E402

__all__ = ["__version__", "run", "RunResult", "RunConfig", "build_config", "PRESETS", "NwbAutolfadsError"]
