"""What a run did and where its result is: :class:`RunResult`, returned by
:func:`nwb_autolfads.run` (and by applying a saved model), with the summary the CLI prints.

The arrays are the run's estimates in the source's units on the model's bins; the rest says
what was modelled, how it was trained, what was written and how to check it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nwb_autolfads.config import RunConfig
from nwb_autolfads.io.results import interval_percent
from nwb_autolfads.io.writing import Estimate
from nwb_autolfads.provenance import SMOKE_NOTE, steps_trained
from nwb_autolfads.train.loop import TrainResult

__all__ = ["RunResult"]


def _renamed(old: str, new: str) -> property:
    """A read-only alias ``old`` of the attribute ``new`` that warns (``DeprecationWarning``)."""

    def get(self):
        cls = type(self).__name__
        warnings.warn(f"{cls}.{old} is deprecated: use {cls}.{new} (docs/glossary.md)", DeprecationWarning,
                      stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated alias of :attr:`{new}` (read-only).")


@dataclass
class RunResult:
    """What :func:`run` did and where the result is.

    Arrays are on the model's bins: n_bins bins (segments one after another, bins no window
    covers left out), C EMG channels (0 when EMG is not modelled), U units (0 when spikes are
    not modelled), F factors, co_dim inferred inputs. The fields documented below their
    definition (``interval``, ``activations_lower``, ...) are not repeated here.

    Attributes
    ----------
    output : pathlib.Path or None
        The NWB file written (None with ``write=False``).
    source : pathlib.Path or Source
        The source: a local path, or the remote :class:`~nwb_autolfads.io.sources.Source`
        (URL / DANDI asset). (Formerly ``input``, a deprecated alias.)
    config : RunConfig
        The configuration as resolved and used (``auto`` settings and data-dependent sizes
        filled in); saved in the provenance.
    source_path : str
        Object path of the modelled series in the source (``units`` when only spikes are
        modelled).
    channel_names : list of str
        The C EMG channel (muscle) names, in the source's order.
    emg_unit : str
        The physical unit of ``activations`` and ``rectified`` (the EMG source's, e.g. ``volts``;
        ``Hz`` when only spikes are modelled). Not a neuron: those are ``unit_ids``. (Formerly
        ``unit``, a deprecated alias.)
    times : numpy.ndarray, shape (n_bins,)
        Bin centres in seconds, on the source's clock.
    activations : numpy.ndarray, shape (n_bins, C)
        Estimated muscle activation in the source's units.
    rates : numpy.ndarray, shape (n_bins, U)
        Estimated firing rates in Hz.
    unit_ids : list of int
        The U modelled units: ids of rows of the source's Units table, in column order.
    factors : numpy.ndarray, shape (n_bins, F)
        Latent factors (arbitrary units), float32.
    inferred_inputs : numpy.ndarray, shape (n_bins, co_dim)
        Inferred inputs (the controller's output, co), float32; co_dim = 0 without a controller.
        (Formerly ``inputs``, a deprecated alias.)
    rectified : numpy.ndarray, shape (n_bins, C)
        Binned rectified EMG (the model's input before scaling), in the source's units.
    preprocessing_steps : list of str
        The preprocessing steps applied, in order, in words.
    training : TrainResult
        Training history (one record per validation check), best step and NLL, and for a
        population the PBT history, summary and the winner's hyperparameters.
    n_windows, n_train, n_valid : int
        Windows in all, for training and for validation.
    seconds : float
        Wall time of the whole run.
    device : str
        The device trained on (``cpu``, ``cuda``, ...).
    chosen_by : str
        How the EMG series was chosen (``found automatically`` or ``--emg``).
    """

    output: Path | None
    source: Path | Any  # a local Path, or a remote Source (URL / DANDI asset)
    config: RunConfig
    source_path: str
    channel_names: list[str]
    emg_unit: str
    times: np.ndarray  # (n_bins,) bin centres, source clock
    activations: np.ndarray  # (n_bins, C) in the source's units (C = 0 when EMG is not modelled)
    rates: np.ndarray  # (n_bins, U) firing rates in Hz (U = 0 when spikes are not modelled)
    unit_ids: list[int]
    factors: np.ndarray  # (n_bins, F)
    inferred_inputs: np.ndarray  # (n_bins, co_dim)
    rectified: np.ndarray  # (n_bins, C) binned rectified EMG (the model's input, source units)
    preprocessing_steps: list[str]
    training: TrainResult
    n_windows: int
    n_train: int
    n_valid: int
    seconds: float
    device: str
    other_candidates: list[str] = field(default_factory=list)
    """Other series that look like EMG but were not modelled."""
    run_name: str | None = None
    """Name of the run's container in processing/autolfads of the output."""
    chosen_by: str = "found automatically"
    doubt: str | None = None
    """Why the modelled series does not look like EMG (None when nothing speaks against it)."""
    score_targets: list[str] = field(default_factory=list)
    """What in the input ``evaluate`` can score the run against (kinematics, force, spikes, ground truth)."""
    plan: dict = field(default_factory=dict)
    """The training budget and the expected time printed before training (also in the provenance's metrics)."""
    stages: dict[str, dict] = field(default_factory=dict)
    """Wall time and memory of each stage, in order (see :class:`StageClock`): ``read``,
    ``preprocess``, ``train``, ``infer``, ``write`` (absent without a file written)."""
    interval: float | None = None
    """Probability of the central credible interval below (``inference.interval``); None when
    there is none (``inference.mode: mean``, or ``inference.interval: null``)."""
    activations_lower: np.ndarray | None = None
    """(n_bins, C) lower bound of that interval of ``activations``, in the source's units (None
    without an interval; C = 0 when EMG is not modelled, as for ``activations``)."""
    activations_upper: np.ndarray | None = None
    """(n_bins, C) its upper bound."""
    rates_lower: np.ndarray | None = None
    """(n_bins, U) lower bound of that interval of ``rates``, in Hz (None without an interval; U = 0
    when spikes are not modelled)."""
    rates_upper: np.ndarray | None = None
    """(n_bins, U) its upper bound."""
    estimates: dict[str, Estimate] = field(default_factory=dict)
    """The continuous inputs modelled (``force``), by modality: each estimate in its source's units
    on ``times``, with its channel names, the offsets and scales it was z-scored with and, with an
    interval, its bounds."""
    interval_calibration: dict | None = None
    """The model's error estimated per channel and level that widened the band
    (:mod:`nwb_autolfads.evaluation.calibration`), in the source's units (Hz for units); None without an
    interval. Recorded in the provenance's metrics."""
    lowpass_check: dict | None = None
    """The EMG's estimates against the best low-pass of the same binned EMG, without the truth:
    per channel the estimated R^2 against the signal under the noise of each, the low-pass's cutoff,
    and the channels where the low-pass is estimated closer
    (:func:`nwb_autolfads.evaluation.risk.lowpass_verdict`); None without EMG or without an interval
    (it is made from the band's estimates). Recorded in the provenance's metrics."""
    model: Path | None = None
    """The model folder this run saved (``<output stem>.autolfads-model``; None when none was
    saved), for :func:`nwb_autolfads.apply`; for an applied run, the model it applied."""
    model_sha256: str | None = None
    """SHA-256 of that model's weights (``model.safetensors``), as the output records it."""
    sessions: dict | None = None
    """For a model trained over several sessions (:func:`nwb_autolfads.run_sessions`): ``this``, the
    index of this result's session, and ``sessions``, every session's name, source identity,
    output and channels, in the model's order; None for a model of one session."""
    applied: dict | None = None
    """For a run of :func:`nwb_autolfads.apply`: the model applied (``location``, ``sha256``,
    ``trained_on``: the identity of its training source, ``run_name``) and whether its scales were
    re-estimated (``rescaled``); None for a run that trained its model."""
    fit_check: dict | None = None
    """For a run of :func:`nwb_autolfads.apply`: how well the model explains this file's data
    against its training data, per channel, and the verdict (:func:`nwb_autolfads.reuse.check_fit`;
    also in the provenance's metrics); None for a run that trained its model."""

    # the former names (docs/glossary.md: "input" read as the inferred inputs, "unit" as a neuron)
    input = _renamed("input", "source")
    inputs = _renamed("inputs", "inferred_inputs")
    unit = _renamed("unit", "emg_unit")

    def summary(self, report: str | Path | None = None) -> str:
        """A readable account of the run.

        Parameters
        ----------
        report : str or pathlib.Path, optional
            The folder a report is written to next (``run --report``), named instead of the
            command that would write one.

        Returns
        -------
        str
            Lines: the source, what was modelled, preprocessing, windows, training and, with a
            file written, what it holds and how to read and evaluate it.
        """
        lines = [f"nwb-autolfads {'apply' if self.applied else 'run'} finished", f"  input       {self.source}",
                 *self._modelled_lines()]
        lines += [
            f"  preprocess  {'; '.join(self.preprocessing_steps) or 'spike counts per bin'}",
            f"  windows     {self.n_windows} of {self.config.windows.window_bins} bins "
            + ("(inference only)" if self.applied else f"({self.n_train} train / {self.n_valid} validation)"),
            self._training_line()]
        if self.stages:  # where the time went (the plan's estimate covers training only)
            what = {"train": " (windows, plan, training)"}  # the training line above counts the training alone
            lines.append("  timings     " + ", ".join(f"{k} {v['seconds']:.1f} s{what.get(k, '')}"
                                                      for k, v in self.stages.items())
                         + f"; total {sum(v['seconds'] for v in self.stages.values()):.1f} s")
        if self.config.preset == "smoke":
            lines.append(f"  NOTE        {SMOKE_NOTE}: run with --preset quick or default for results to use")
        if self.fit_check and self.fit_check.get("verdict") == "misfit":
            flagged = [ch for chans in self.fit_check.get("flagged", {}).values() for ch in chans]
            lines.append(f"  WARNING     the model explains {len(flagged)} channel(s) of this file far worse than its "
                         f"training data ({', '.join(flagged)}): their estimates are likely wrong; train a model on "
                         "this recording")
        lines += self._check_lines()
        if self.output is not None:
            lines += self._output_lines(report)
        return "\n".join(lines)

    def _check_lines(self) -> list[str]:
        """The check of the EMG's estimates against a low-pass, without the truth (:attr:`lowpass_check`):
        the channels flagged, that none was, or why there is no check."""
        c = self.lowpass_check
        if not self.channel_names:
            return []
        if not c:
            return (["  check       none against a low-pass: it needs the credible band (inference.mode: sample, "
                     "n_samples >= 2, inference.interval set)"] if self.interval is None else [])
        per = c["channels"]
        known = [k for k, v in per.items() if v is not None]
        if not known:
            return ["  check       none against a low-pass: too few bins, no signal above the noise, or bins "
                    "under 5 ms"]
        if not c["flagged"]:
            return [f"  check       no muscle where a low-pass of the rectified EMG is estimated closer to the EMG's "
                    f"signal than the model ({len(known)} checked; one-sided: see metrics lowpass_check)"]
        shown = ", ".join(f"{k} low-pass {per[k]['lowpass_cutoff_hz']:g} Hz {per[k]['lowpass_r2']:.3f} vs model "
                          f"{per[k]['model_r2']:.3f}" for k in c["flagged"][:4])
        more = f", and {len(c['flagged']) - 4} more" if len(c["flagged"]) > 4 else ""
        return [f"  WARNING     a low-pass of the rectified EMG is estimated to follow the EMG's signal better than "
                f"the model on {len(c['flagged'])} of {len(known)} muscle(s) (squared correlation with the signal, "
                f"no truth needed: {shown}{more}): those estimates may be worse than a low-pass's, or the EMG has "
                "artefacts the low-pass follows (the check counts them as signal); look at those muscles, or use "
                "nwb_autolfads.LowPass(cutoff) there (README: Reading the results)"]

    def _modelled_lines(self) -> list[str]:
        """What was modelled: the EMG, the units, the continuous inputs; doubts about the EMG."""
        dur = self.times.size * self.config.windows.bin_size  # the time modelled (gaps between segments excluded)
        bins = f"{dur:.1f} s in {self.config.windows.bin_size * 1e3:g} ms bins"
        lines = []
        if self.channel_names:
            lines.append(f"  modelled    {self.source_path}: {len(self.channel_names)} channels "
                         f"({', '.join(self.channel_names)}), {bins} [{self.chosen_by}]")
        if self.unit_ids:
            query = self.config.data.units
            lines.append(f"  modelled    units: {len(self.unit_ids)} units" + (f" ({query})" if query else "")
                         + f", {bins}, Poisson")
        for e in self.estimates.values():
            lines.append(f"  modelled    {e.source_path}: {len(e.channel_names)} channel(s) "
                         f"({', '.join(e.channel_names)}), {bins}, Gaussian ({e.modality})")
        if self.doubt and self.channel_names:
            lines.append(f"  WARNING     {self.source_path} does not look like EMG: {self.doubt}")
        if self.other_candidates and self.channel_names:
            lines.append(f"              also EMG-like, not modelled (choose with --emg): "
                         f"{', '.join(self.other_candidates)}")
        return lines

    def _training_line(self) -> str:
        """How the model was trained: the population and its winner, or the one model (or, for
        an applied model, which one and where it was trained)."""
        t = self.training
        if self.applied is not None:
            a = self.applied
            return (f"  model       applied {a['location']} (sha256 {a['sha256'][:12]}...), trained on "
                    f"{a['trained_on'].get('location') or a['trained_on'].get('identifier')}; no training"
                    + ("; scales re-estimated on this file" if a.get("rescaled") else "; its stored scales"))
        if t.pbt_summary:
            return (f"  training    population-based: {t.pbt_summary['population']} members x "
                    f"{t.pbt_summary['generations']} generations of {self.config.pbt.generation_steps} steps in "
                    f"{t.seconds:.1f} s on {self.device}" + (" (stopping rule)" if t.stopped_early else "")
                    + f"; winner: member {t.pbt_summary['best_member']} of generation "
                    f"{t.pbt_summary['best_generation'] + 1}, smoothed validation NLL {t.best_valid_nll:.4f}; "
                    + ", ".join(f"{k} {v:.3g}" for k, v in (t.hyperparameters or {}).items()))
        return (f"  training    {steps_trained(t)} steps in {t.seconds:.1f} s on {self.device}; best smoothed "
                f"validation NLL {t.best_valid_nll:.4f} at step {t.best_step}"
                + (f" (stopped early: no improvement of the smoothed validation NLL for "
                   f"{self.config.train.early_stopping_patience} steps)" if t.stopped_early else ""))

    def _output_lines(self, report: str | Path | None) -> list[str]:
        """The file written, what it holds, how to read it and how to compare the run."""
        lines = [f"  output      {self.output}" + (" (results only: the source's data stay in the input; "
                                                   "--output-content full copies them too)"
                                                   if self.config.output.content == "results" else "")]
        band = f" with {interval_percent(self.interval)} credible interval" if self.interval is not None else ""
        written = []
        if self.channel_names:
            written.append(f"emg_activations ({self.activations.shape[0]} x {self.activations.shape[1]}, "
                           f"{self.emg_unit}{band})")
        if self.unit_ids:
            written.append(f"firing_rates ({self.rates.shape[0]} x {self.rates.shape[1]}, Hz{band})")
        written += [f"{e.name} ({e.data.shape[0]} x {e.data.shape[1]}, {e.unit}{band})"
                    for e in self.estimates.values()]
        lines.append(f"              processing/autolfads/{self.run_name}: {', '.join(written)}, factors, "
                     "inferred_inputs, window_initial_conditions, provenance")
        inf = self.config.inference
        if self.interval is None and inf.interval is not None and not inf.with_interval:
            fix = ("inference.mode: sample" if inf.mode != "sample" else
                   f"inference.n_samples: at least 2, not {inf.n_samples}")
            lines.append("              no credible interval: inference used the posterior mean, not samples "
                         f"({fix} for one)")
        lines.append(f"  read with   nwb_autolfads.load_results({str(self.output)!r})  or  "
                     f"nwb-autolfads runs {self.output}")
        if self.model is not None and self.applied is None:
            lines.append(f"  model       {self.model} (apply to another session: nwb-autolfads apply {self.model} "
                         "OTHER.nwb)")
        return lines + [self._compare_line(report)]

    def _compare_line(self, report: str | Path | None) -> str:
        """What ``evaluate`` would score the run against, and how to run it (or the report written next)."""
        baselines = " and ".join((["rectified EMG, low-pass and Bayesian filtering"] if self.channel_names else [])
                                 + (["smoothed spikes"] if self.unit_ids else []))
        if not self.score_targets:
            return (f"  compare     nothing in the input to score against (no kinematics, force"
                    f"{', units' if self.channel_names else ''} or ground truth): `evaluate` would show no scores")
        if report is not None:
            return (f"  report      evaluated next (vs {baselines}, scored on "
                    f"{', '.join(self.score_targets)}): {Path(report) / 'index.html'}")
        return (f"  compare     nwb-autolfads evaluate {self.output} --report report/   (vs {baselines}, "
                f"scored on {', '.join(self.score_targets)})")
