"""A scikit-learn-style estimator over :func:`nwb_autolfads.run` and :func:`nwb_autolfads.apply`:
``AutoLFADS(preset="quick").fit("day1.nwb").transform("day2.nwb")`` -> ``xarray.Dataset``.

``fit`` trains (nothing is written beside the file: the model is kept in a temporary folder
until :meth:`AutoLFADS.save`), ``transform`` applies the model without training, ``save`` /
``load`` keep and read the model folder (:mod:`nwb_autolfads.model.artifact`). Following
scikit-learn's conventions, constructor arguments are stored as given and what fitting learns
ends with ``_``.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping

from nwb_autolfads.errors import ConfigError

__all__ = ["AutoLFADS", "as_dataset"]


def as_dataset(result) -> "Any":
    """A :class:`~nwb_autolfads.run_result.RunResult` as an ``xarray.Dataset`` on ``time`` (bin
    centres, s): ``emg_activations`` (time, channel) in the source's units, ``firing_rates``
    (time, unit) in Hz, the continuous estimates, ``factors`` (time, factor) and
    ``inferred_inputs`` (time, inferred_input), as :func:`nwb_autolfads.load_results` names them."""
    import xarray as xr

    coords: dict = {"time": ("time", result.times, {"units": "s", "long_name": "bin centre"})}
    data: dict = {"factors": (("time", "factor"), result.factors),
                  "inferred_inputs": (("time", "inferred_input"), result.inferred_inputs)}
    if result.channel_names:
        coords["channel"] = ("channel", list(result.channel_names))
        data["emg_activations"] = (("time", "channel"), result.activations, {"units": result.emg_unit})
    if result.unit_ids:
        coords["unit"] = ("unit", list(result.unit_ids))
        data["firing_rates"] = (("time", "unit"), result.rates, {"units": "Hz"})
    for e in result.estimates.values():
        dim = f"{e.name}_channel"
        coords[dim] = (dim, list(e.channel_names))
        data[e.name] = (("time", dim), e.data, {"units": e.unit})
    attrs = {"bin_size": float(result.config.windows.bin_size), "source": str(result.source),
             "model_sha256": result.model_sha256 or ""}
    return xr.Dataset(data, coords=coords, attrs=attrs)


class AutoLFADS:
    """AutoLFADS as an estimator: fit on one NWB file, transform others.

    Parameters
    ----------
    config : RunConfig, str or pathlib.Path, optional
        A configuration or a YAML config file (as :func:`nwb_autolfads.run` takes it).
    preset : str, optional
        ``smoke``, ``quick``, ``default`` or ``paper``.
    overrides : mapping, optional
        Extra settings (``{"train.max_steps": 1000}``).
    seed : int, optional
        The ``seed`` setting.
    progress : bool
        Progress bars on stderr.

    Attributes
    ----------
    model_path_ : pathlib.Path
        The fitted model's folder (a temporary one after :meth:`fit`, until :meth:`save`).
    model_sha256_ : str
        SHA-256 of its weights.
    result_ : RunResult, list of RunResult, or None
        What :meth:`fit` computed on its file (per session for several files; None after
        :meth:`load`).
    sessions_ : list of str
        The sessions of a model fitted on several files (their names, for ``transform(...,
        session=)``); empty for one file.
    """

    def __init__(self, config: Any = None, preset: str | None = None, overrides: Mapping[str, Any] | None = None,
                 seed: int | None = None, progress: bool = True) -> None:
        self.config, self.preset, self.overrides, self.seed, self.progress = config, preset, overrides, seed, progress

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's ``get_params``)."""
        return {"config": self.config, "preset": self.preset, "overrides": self.overrides, "seed": self.seed,
                "progress": self.progress}

    def fit(self, path: str | Path | list, y: Any = None) -> "AutoLFADS":
        """Train on the NWB file ``path`` (:func:`nwb_autolfads.run` without writing a file), or
        on a list of two or more files: ONE model over those sessions
        (:func:`nwb_autolfads.run_sessions`; then ``result_`` is a list, one result per session,
        and :meth:`transform` needs ``session``). Nothing is written beside the files.

        Raises
        ------
        ConfigError
            A list of fewer than two files, or a setting as for :func:`nwb_autolfads.run`.
        """
        from nwb_autolfads.pipeline import run

        folder = Path(tempfile.mkdtemp(prefix="autolfads-model-"))
        weakref.finalize(self, shutil.rmtree, folder, True)
        options = dict(preset=self.preset, config=self.config, overrides=self.overrides, seed=self.seed, write=False,
                       progress=self.progress, save_model=folder / "model.autolfads-model")
        if isinstance(path, (list, tuple)):
            from nwb_autolfads.sessions import run_sessions

            results = run_sessions(list(path), **options)
            self.model_path_, self.model_sha256_, self.result_ = results[0].model, results[0].model_sha256, results
            self.sessions_ = [e["name"] for e in results[0].sessions["sessions"]]
            self._model_name = "the fitted model"  # its temporary folder is not the user's
            return self
        result = run(path, **options)
        self.model_path_, self.model_sha256_, self.result_, self.sessions_ = result.model, result.model_sha256, result, []
        self._model_name = "the fitted model"
        return self

    def _fitted(self) -> Path:
        if getattr(self, "model_path_", None) is None:
            raise ConfigError("this AutoLFADS is not fitted: call fit(path) or AutoLFADS.load(model_folder) first")
        return self.model_path_

    def transform(self, path: str | Path, *, rescale: bool = False, drop_extra: bool = False,
                  session: str | None = None) -> "Any":
        """The fitted model's estimates on the NWB file ``path`` (:func:`nwb_autolfads.apply`, no
        training, nothing written), as an ``xarray.Dataset`` (:func:`as_dataset`). ``session``:
        for a model fitted on several sessions, the one whose read-in/out fit ``path``'s channels
        (one of ``sessions_``). Its messages name the arguments (``session=``, ``drop_extra=``,
        ``rescale=``) and, after :meth:`fit`, the model as ``the fitted model``; a model that
        explains ``path``'s data far worse than its training data is warned about (logging)."""
        from nwb_autolfads.reuse import apply

        return as_dataset(apply(self._fitted(), path, rescale=rescale, drop_extra=drop_extra, write=False,
                                progress=self.progress, session=session,
                                model_name=getattr(self, "_model_name", None)))

    def fit_transform(self, path: str | Path | list, y: Any = None) -> "Any":
        """:meth:`fit` on ``path``, and its estimates there (as the training run inferred them); for
        a list of sessions, a list of datasets, one per session."""
        result = self.fit(path).result_
        return [as_dataset(r) for r in result] if isinstance(result, list) else as_dataset(result)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Copy the fitted model's folder to ``path`` (a ``*.autolfads-model`` folder); returns it.

        Raises
        ------
        OutputError
            ``path`` exists (without ``overwrite``) or cannot be written.
        """
        from nwb_autolfads.model.artifact import check_model_path

        src, dst = self._fitted(), check_model_path(path, overwrite)
        tmp = dst.with_name(f".{dst.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
        return dst

    @classmethod
    def load(cls, path: str | Path, progress: bool = True) -> "AutoLFADS":
        """An estimator fitted with the model folder ``path`` (checked as :func:`load_model` does)."""
        from nwb_autolfads.model.artifact import load_model

        art = load_model(path)
        est = cls(config=art.config, progress=progress)
        est.model_path_, est.model_sha256_, est.result_ = art.path, art.sha256, None
        est.sessions_ = [str(e.get("name")) for e in art.meta.get("sessions") or []]
        est._model_name = None  # messages name the folder the user gave
        return est
