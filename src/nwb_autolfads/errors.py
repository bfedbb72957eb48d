"""Exceptions raised at the edges of the pipeline.

Every exception the user can trigger with bad input derives from :class:`NwbAutolfadsError`.
Its message names the thing, the value and the fix; the CLI prints it as one line on stderr
and exits with code 2.
"""


class NwbAutolfadsError(Exception):
    """Base class of all user-facing errors of nwb-autolfads."""


class InputFileError(NwbAutolfadsError):
    """The input path is missing, not a file, not HDF5 or not NWB."""


class SignalNotFoundError(NwbAutolfadsError):
    """No usable signal (e.g. EMG) was found in the file, or a given object path is wrong."""


class SignalError(NwbAutolfadsError):
    """A signal was found but cannot be modelled (bad shape, bad timestamps, too short...)."""


class ConfigError(NwbAutolfadsError):
    """A configuration value or file is invalid (unknown key, wrong type, out of range)."""


class ResultsNotFoundError(NwbAutolfadsError):
    """A file holds no nwb-autolfads results, or not the run asked for."""


class OutputError(NwbAutolfadsError):
    """The output cannot be written (exists already, directory missing or read-only...)."""


class StateFormatError(NwbAutolfadsError):
    """A run directory holds training state this version cannot resume: written by another
    version of nwb-autolfads (or damaged). The message names the directory and the fix (``--fresh``
    moves it aside, never deletes it; or finish the run with the version that wrote it)."""


class TrainingError(NwbAutolfadsError):
    """Training failed in a way the user can act on (e.g. diverged to NaN)."""


class MissingDependencyError(NwbAutolfadsError, ImportError):
    """An optional feature needs a package that is not installed (the message names the extra,
    e.g. ``pip install "nwb-autolfads[report]"``)."""
