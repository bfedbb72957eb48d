"""nwb-autolfads: AutoLFADS estimates of muscle activation from EMG in NWB files.

Main entry points::

    import nwb_autolfads
    result = nwb_autolfads.run("session.nwb", preset="quick")
    print(result.summary())
    batch = nwb_autolfads.run_batch(["DANDI:000941"], "out/")   # every asset (or files, a folder, a glob)

    other = nwb_autolfads.apply(result.model, "session2.nwb")  # the trained model, no training
    ds = nwb_autolfads.load_results(result.output)   # xarray.Dataset of the latest run
    tsd = nwb_autolfads.to_pynapple(result.output)   # pynapple TsdFrames, columns named
    ev = nwb_autolfads.evaluate(result.output)        # model vs low-pass and Bayesian filters
    lp = nwb_autolfads.LowPass(cutoff=6.0).fit("session.nwb").transform("session2.nwb")  # a baseline, as AutoLFADS
    print(ev.table()); nwb_autolfads.write_report(ev, "report/")

See :func:`run`, :func:`load_results` / :func:`list_runs`, :class:`RunConfig` /
:func:`build_config` and :mod:`nwb_autolfads.testing`. Importing the package is light (the
configuration and the errors): the NWB stack (pynwb, hdmf, h5py) is imported on first use of a
function that reads or writes NWB, and with it the ndx-autolfads namespace is loaded into pynwb
(:mod:`nwb_autolfads.io.reading` and :mod:`nwb_autolfads.io.writing` import
:mod:`nwb_autolfads.ndx.namespace`; ``import nwb_autolfads.ndx.namespace`` loads it alone). Training
processes (population workers) import only torch and the model and training modules.
"""

try:  # the installed distribution's version (pyproject.toml), one source of truth
    from importlib.metadata import PackageNotFoundError as _NotFound, version as _dist_version

    __version__ = _dist_version("nwb-autolfads")
except _NotFound:  # running from a source tree that was never installed
    __version__ = "0.1.0"

from nwb_autolfads.config import PRESETS, RunConfig, build_config  # noqa: E402
from nwb_autolfads.errors import NwbAutolfadsError  # noqa: E402

__all__ = ["__version__", "run", "run_sessions", "apply", "AutoLFADS", "LowPass", "BayesianFilter", "GaussianSmoothing", "Rectified", "RunResult", "run_batch", "BatchResult", "load_results", "list_runs", "to_pynapple", "evaluate", "Evaluation", "write_report",
           "RunConfig", "build_config", "PRESETS", "NwbAutolfadsError"]


def __getattr__(name):  # PEP 562: import the pipeline (and pynwb) on first use
    if name in ("list_runs", "load_results", "to_pynapple"):
        from nwb_autolfads.io import results

        return getattr(results, name)
    if name == "extension":  # the ndx-autolfads namespace module, by its former name
        import importlib

        return importlib.import_module(".ndx.namespace", __name__)
    if name in ("run", "RunResult"):
        from nwb_autolfads import pipeline

        return getattr(pipeline, name)
    if name == "run_sessions":  # one model over several sessions (nwb_autolfads.sessions)
        from nwb_autolfads.sessions import run_sessions

        return run_sessions
    if name == "apply":  # a saved model on new data (nwb_autolfads.reuse)
        from nwb_autolfads.reuse import apply

        return apply
    if name == "AutoLFADS":  # the estimator (fit / transform / save / load)
        from nwb_autolfads.estimator import AutoLFADS

        return AutoLFADS
    if name in ("LowPass", "BayesianFilter", "GaussianSmoothing", "Rectified"):  # the baselines as estimators
        from nwb_autolfads import baseline_estimators

        return getattr(baseline_estimators, name)
    if name in ("run_batch", "BatchResult"):
        from nwb_autolfads import batch

        return getattr(batch, name)
    if name in ("evaluate", "Evaluation"):
        from nwb_autolfads.evaluation import comparison as evaluation

        return getattr(evaluation, name)
    if name == "write_report":
        from nwb_autolfads.evaluation.report import write_report

        return write_report
    raise AttributeError(f"module 'nwb_autolfads' has no attribute {name!r}")
