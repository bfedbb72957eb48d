"""The ndx-autolfads NWB extension: load the namespace, expose its classes.

The YAML is built by ``spec/build_spec.py`` and committed under ``spec/``; the wheel ships it
inside the package (``nwb_autolfads/ndx/spec``), an editable install reads it from the checkout.
Importing this module loads the namespace into pynwb, so every file this process writes caches
it, and any NWB reader can then read our results without installing nwb-autolfads.

Types (see spec/README.md for the design):

- ``AutoLFADSRun``: one run, in the standard ``processing['autolfads']`` module; holds the
  estimates below, ``factors`` / ``inferred_inputs`` TimeSeries, the ``window_initial_conditions``
  (since 0.7.0; ``initial_conditions`` TimeSeries before), ``training_curves`` and ``pbt_history`` tables, a link to the source EMG and provenance.
- ``MuscleActivations``: TimeSeries of activations with ``channel_names`` and ``scales``.
- ``FiringRates``: TimeSeries of rates in Hz with a ``units`` region of the Units table.
- ``ContinuousEstimate``: TimeSeries of another modelled signal (force) in its source's units,
  with ``channel_names``, ``offsets`` and ``scales`` (since 0.4.0; any number per run).
"""

from __future__ import annotations

from pathlib import Path

from pynwb import get_class, load_namespaces

__all__ = ["NAMESPACE", "SPEC_VERSION", "namespace_path", "AutoLFADSRun", "MuscleActivations", "FiringRates",
           "ContinuousEstimate"]

NAMESPACE = "ndx-autolfads"
_NS_FILE = f"{NAMESPACE}.namespace.yaml"


def namespace_path() -> Path:
    """Where the namespace YAML is: inside the installed package, or in the checkout's spec/."""
    here = Path(__file__).resolve().parent  # nwb_autolfads/ndx
    for candidate in (here / "spec" / _NS_FILE, here.parents[2] / "spec" / _NS_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_NS_FILE} not found in {here / 'spec'} or {here.parents[2] / 'spec'}: "
                            "reinstall nwb-autolfads")


def _spec_version(path: Path) -> str:
    import yaml
    with open(path) as f:
        return str(yaml.safe_load(f)["namespaces"][0]["version"])


load_namespaces(str(namespace_path()))
SPEC_VERSION = _spec_version(namespace_path())

AutoLFADSRun = get_class("AutoLFADSRun", NAMESPACE)
MuscleActivations = get_class("MuscleActivations", NAMESPACE)
FiringRates = get_class("FiringRates", NAMESPACE)
ContinuousEstimate = get_class("ContinuousEstimate", NAMESPACE)
