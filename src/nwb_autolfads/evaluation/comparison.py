"""Evaluation of a stored run against the published baselines (docs/science.md, Evaluation).

:func:`evaluate` reads a result file (the output of ``run``: the source data and the run side by
side; for a results-only file, the source is reopened where the run read it), recomputes the binned rectified EMG from the source with the run's own preprocessing,
builds the baselines (rectified EMG; zero-phase low-pass over a cutoff sweep; Sanger's Bayesian
filter over an alpha/beta grid; for spikes, Gaussian smoothing over a width sweep) and scores
the model and every baseline the same way:

- ``kinematics``: cross-validated ridge decoding of each kinematic variable (and its velocity)
  from the estimate with a history of lags, R^2 per variable and per fold;
- ``force``: cross-validated ridge prediction of each force channel from the estimate (r and
  R^2), and each muscle's zero-lag correlation with the force;
- ``spikes``: cross-validated ridge prediction of each muscle's estimate from the binned
  cortical spikes with a history of lags (R^2), when the file has units;
- ``truth``: R^2 of a cross-validated per-channel affine map of the estimate onto the true
  activations (or rates), for synthetic files with ``processing/ground_truth``;
- ``spectra``: the model's effective filter: gain and coherence from rectified EMG to the
  estimate, over the whole recording and per behavioural phase when there is a trials table.

Folds are contiguous blocks of time, with ``lags`` bins on either side of the test fold left out
of training. A baseline's parameters and the ridge penalty are chosen inside each training part
(scikit-learn ``GridSearchCV`` on a ``TimeSeriesSplit`` with the same gap), never on the test fold. For the ``spikes`` metric, where smoother is
always more predictable, the baselines keep the parameters chosen by the primary metric
(truth, else kinematics, else force).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal as sps
from tqdm.auto import tqdm

from nwb_autolfads.data.timebase import regular_times
from nwb_autolfads.config.mappings import json_values
from nwb_autolfads.evaluation import baselines as bl
from nwb_autolfads.errors import InputFileError, SignalError
from nwb_autolfads.evaluation.metrics import RIDGE_ALPHAS, blocked_folds, fit_ridge, lagged, r2_of

__all__ = ["Evaluation", "evaluate", "nested_cv", "transfer_function"]

log = logging.getLogger(__name__)

MODEL = "nwb-autolfads"


@dataclass
class Evaluation:
    """What :func:`evaluate` found: the scores of the model and of every baseline.

    ``scores[metric][method]`` holds ``mean`` (over targets, of the pooled cross-validated
    score), ``per_target``, ``folds`` (folds x targets), ``targets`` and, for baselines,
    ``chosen`` (the parameters picked in each fold).

    Attributes
    ----------
    result : str
        The result file evaluated.
    run : str
        The name of the run evaluated.
    bin_size : float
        The run's bin width in seconds.
    n_bins : int
        Bins evaluated.
    channel_names : list of str
        The EMG channels (or, for a spikes-only run, ``unit <id>`` names).
    methods : list of str
        The model (``nwb-autolfads``) and the baselines, in table order.
    folds : int
        Contiguous cross-validation folds.
    lags : int
        History of the ridge decoders, in bins.
    scores : dict
        ``scores[metric][method]`` as above; metrics ``truth``, ``kinematics``, ``force`` and
        ``spikes`` where the file allows them. R^2 except ``force`` (correlation r; its R^2 in
        ``mean_r2``).
    spectra : dict
        ``spectra[phase][method]``: ``freq`` (Hz), ``gain`` and ``coherence`` from rectified EMG
        to the estimate, ``n_segments``, ``nperseg``; phase ``all`` and one per behavioural
        phase of the trials table.
    notes : list of str
        What a reader of the scores should know (e.g. scores that are not independent).
    """

    result: str
    run: str
    bin_size: float
    n_bins: int
    channel_names: list[str]
    methods: list[str]
    folds: int = 5
    lags: int = 10
    scores: dict = field(default_factory=dict)
    spectra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    traces: dict = field(default_factory=dict, repr=False)
    """For plots (not in JSON): ``times``, ``rectified``, the ``raw`` excerpt, each method's
    estimate (``(kind, method)`` -> (parameters, array)), the ground truth when the file has it
    (``(kind, "truth")``: true activations, or true rates in Hz), the binned spike counts
    (``spikes``) and names of the units (``unit_names``), and the activations' ``unit``."""

    def primary(self) -> str | None:
        for metric in ("truth", "kinematics", "force", "spikes"):
            if metric in self.scores:
                return metric
        return None

    def to_dict(self) -> dict:
        return {"result": self.result, "run": self.run, "bin_size": self.bin_size, "n_bins": self.n_bins,
                "folds": self.folds, "lags": self.lags,
                "channel_names": self.channel_names, "methods": self.methods, "primary_metric": self.primary(),
                "scores": json_values(self.scores), "spectra": json_values(self.spectra), "notes": self.notes}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def table(self) -> str:
        """A text table: one row per method, one column per metric (mean, with the fold SD)."""
        metrics = [m for m in ("truth", "kinematics", "force", "spikes") if m in self.scores]
        heads = {"truth": "R^2 vs truth", "kinematics": "kinematics R^2", "force": "force r", "spikes": "spikes->est R^2"}
        lines = [f"{self.result} run {self.run}: {self.n_bins} bins of {self.bin_size * 1e3:g} ms, "
                 f"{len(self.channel_names)} channels"]
        if not metrics:
            lines.append("no kinematics, force, spikes or ground truth in the file: nothing to score against")
            return "\n".join(lines + self.notes)
        width = max(len(m) for m in self.methods) + 2
        lines.append(f"{'method':<{width}}" + "".join(f"{heads[m]:>20}" for m in metrics))
        for method in self.methods:
            row = f"{method:<{width}}"
            for m in metrics:
                s = self.scores[m].get(method)
                if s is None:
                    row += f"{'-':>20}"
                else:
                    spread = np.std(np.nanmean(np.asarray(s["folds"], dtype=float), axis=1))
                    row += f"{s['mean']:>13.3f} ±{spread:5.3f}"
            lines.append(row)
        for m in metrics:
            chosen = {k: Counter(v["chosen"]).most_common(1)[0][0] for k, v in self.scores[m].items() if v.get("chosen")}
            if chosen:
                lines.append(f"{heads[m]}: baselines' parameters (most often chosen by cross-validation): "
                             + "; ".join(f"{k} {v}" for k, v in chosen.items()))
        lines.append(f"± is the SD over {self.folds} contiguous folds; decoders use {self.lags} bins "
                     f"({self.lags * self.bin_size * 1e3:g} ms) of history. " + " ".join(self.notes))
        return "\n".join(lines)



# --------------------------------------------------------------------------- cross-validation
def nested_cv(candidates: dict[str, np.ndarray], targets: np.ndarray, lags: int = 10, folds: int = 5,
              per_channel: bool = False, fixed: list[str] | None = None, alphas=RIDGE_ALPHAS,
              on_fold=None) -> dict:
    """Cross-validated ridge prediction of ``targets`` (n, K) from an estimate that has several
    candidate parameter settings (``candidates``: label -> (n, C)).

    For each contiguous test fold (``lags`` rows left out of training on either side,
    :func:`~nwb_autolfads.evaluation.metrics.blocked_folds`), every label gets a ridge fit on the
    training part, its penalty chosen inside it (scikit-learn ``GridSearchCV`` on a
    ``TimeSeriesSplit`` with a gap of ``lags``, :func:`~nwb_autolfads.evaluation.metrics.fit_ridge`);
    the label with the best validation R^2 there predicts the test fold. ``per_channel``: channel
    c of the estimate predicts target c alone (a map per channel, for scores against truth).
    ``fixed``: the label to use in each fold instead of choosing. Rows where anything is NaN are
    left out. ``on_fold()`` is called after each test fold (a progress bar). Returns dict(mean, per_target (K,), folds (folds, K), r (K,), chosen [label per fold]).

    Raises
    ------
    SignalError
        Too few usable bins for the folds, the gap and the inner validation blocks.
    """
    labels = list(candidates)
    ok = np.isfinite(targets).all(axis=1)
    for c in candidates.values():
        ok &= np.isfinite(c).all(axis=1)
    Y = targets[ok]
    feats = {k: lagged(v[ok], lags) if not per_channel else v[ok] for k, v in candidates.items()}
    n = Y.shape[0]
    if n < 10 * folds:
        raise SignalError(f"only {n} usable bins to cross-validate over {folds} folds: evaluate a longer recording")
    pred = np.full_like(Y, np.nan, dtype=float)
    fold_r2, fold_r, chosen = [], [], []
    columns = [[c] for c in range(Y.shape[1])] if per_channel else [slice(None)]

    def fit(label, train):
        """[(columns, predict)] and the mean validation R^2 of ``label``'s fits on ``train``."""
        fits, scores = [], []
        for cols in columns:
            X = lagged(feats[label][:, cols], lags) if per_channel else feats[label]
            predict, score = fit_ridge(X[train], Y[train][:, cols], alphas, gap=lags)
            fits.append((cols, X, predict))
            scores.append(score)
        return fits, float(np.mean(scores))

    for k, (train, test) in enumerate(blocked_folds(n, folds, gap=lags)):
        options = [fixed[k]] if fixed is not None else labels
        fitted = {lab: fit(lab, train) for lab in options}
        label = max(options, key=lambda lab: fitted[lab][1])
        chosen.append(label)
        for cols, X, predict in fitted[label][0]:
            pred[test[:, None], np.arange(Y.shape[1])[cols]] = predict(X[test])
        fold_r2.append(r2_of(pred[test], Y[test]))
        fold_r.append(_corr(pred[test], Y[test]))
        if on_fold is not None:
            on_fold()
    pooled = r2_of(pred, Y)
    return {"mean": float(np.nanmean(pooled)), "per_target": pooled, "folds": np.array(fold_r2),
            "r": _corr(pred, Y), "folds_r": np.array(fold_r),
            "chosen": chosen if len(labels) > 1 or fixed is not None else []}


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(0), b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a**2).sum(0) * (b**2).sum(0))


# --------------------------------------------------------------------------- spectra
def transfer_function(x: np.ndarray, y: np.ndarray, fs: float, segments: list[slice],
                      nperseg: int = 128) -> dict | None:
    """Gain |Pxy / Pxx| and magnitude-squared coherence from ``x`` to ``y`` (n, C), averaged
    over channels, from Welch cross-spectra over the ``segments`` (of the rows) at least
    ``nperseg`` long. Returns dict(freq, gain, coherence, n_segments, nperseg) or None if no
    segment is long enough (``n_segments``: how many ``nperseg``-bin Welch segments, scipy's
    word for its windows, the estimate averages)."""
    pxx = pyy = pxy = None
    n_seg = 0
    for seg in segments:
        if seg.stop - seg.start < nperseg:
            continue
        xs, ys = x[seg], y[seg]
        f, sxx = sps.welch(xs, fs, nperseg=nperseg, axis=0)
        _, syy = sps.welch(ys, fs, nperseg=nperseg, axis=0)
        _, sxy = sps.csd(xs, ys, fs, nperseg=nperseg, axis=0)
        w = (seg.stop - seg.start) // nperseg
        pxx = w * sxx if pxx is None else pxx + w * sxx
        pyy = w * syy if pyy is None else pyy + w * syy
        pxy = w * sxy if pxy is None else pxy + w * sxy
        n_seg += w
    if pxx is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.abs(pxy) / pxx
        coh = np.abs(pxy) ** 2 / (pxx * pyy)
    return {"freq": f, "gain": np.nanmean(gain, axis=1), "coherence": np.nanmean(coh, axis=1), "n_segments": n_seg,
            "nperseg": nperseg}


# --------------------------------------------------------------------------- reading
def _align(src_times: np.ndarray, values: np.ndarray, times: np.ndarray, bin_size: float) -> np.ndarray:
    """Rows of ``values`` (at ``src_times``) at ``times``; NaN where no source bin is within a
    tenth of a bin."""
    idx = np.clip(np.searchsorted(src_times, times), 1, max(1, src_times.size - 1))
    left = np.clip(idx - 1, 0, src_times.size - 1)
    right = np.clip(idx, 0, src_times.size - 1)
    nearest = np.where(np.abs(src_times[left] - times) <= np.abs(src_times[right] - times), left, right)
    out = values[nearest].astype(float)
    out[np.abs(src_times[nearest] - times) > bin_size / 10] = np.nan
    return out


@contextlib.contextmanager
def _open_source(result: Path, ds, source: str | Path | None = None):
    """The NWB file holding the run's source signals, open: the result file itself, or for a
    results-only file the source, reopened (streamed if remote) from ``source`` or else from where
    the run read it, and checked to be that file (its identifier and the modelled objects' ids)."""
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.sources import resolve_source

    if ds.attrs.get("source_in_file", 1):
        with open_nwb(result) as (_io, nwb):
            yield nwb
        return
    run = ds.attrs["run"]
    places = [str(source)] if source is not None else list(dict.fromkeys(
        p for p in (ds.attrs.get("source_url"), ds.attrs.get("source_location")) if p))
    if not places:
        raise InputFileError(f"run {run!r} of {str(result)!r} holds results only and does not say where its source "
                             "is: pass the source file with --source (evaluate(..., source=...))")
    errors = []
    for where in places:
        with contextlib.ExitStack() as stack:
            try:
                src = resolve_source(where)
                _io, nwb = stack.enter_context(open_nwb(src))
            except InputFileError as exc:
                errors.append(str(exc))
                continue
            _check_is_source(nwb, ds, where)
            _check_source_unchanged(src, ds, where)
            log.info("run %s holds results only: reading its source signals from %s", run, where)
            yield nwb
            return
    raise InputFileError(f"run {run!r} of {str(result)!r} holds results only, and its source could not be opened "
                         f"from {' nor '.join(repr(p) for p in places)} ({errors[0].rstrip('.')}): make it reachable "
                         "again, or pass where the source file is now with --source (evaluate(..., source=...))")


def _check_source_unchanged(src, ds, where: str) -> None:
    """Refuse a local source whose bytes are not those the run read (its SHA-256, recorded by the
    run): data edited in place keep the identifier and object ids, and the baselines computed
    from them would be scored silently against the model's results of the old data."""
    want = str(ds.attrs.get("source_file_sha256", "") or "")
    if not want or src.remote or src.path is None:
        return
    from nwb_autolfads.io.writing import file_sha256

    got = file_sha256(src.path)
    if got != want:
        raise InputFileError(f"{where!r} is not the file run {ds.attrs['run']!r} read: its SHA-256 is {got[:12]}..., "
                             f"the run read {want[:12]}... (edited or rewritten since?): pass the file the run read "
                             "with --source, or run the model again on this one")


def _check_is_source(nwb, ds, where: str) -> None:
    """Refuse a file that is not the run's source (scores against other data would look valid)."""
    want = str(ds.attrs.get("source_file_identifier", ""))
    if want and nwb.identifier != want:
        raise InputFileError(f"{where!r} is not the source of run {ds.attrs['run']!r}: its identifier is "
                             f"{nwb.identifier!r}, the run read {want!r}: pass the file the run read with --source")
    paths = str(ds.attrs.get("source_paths", "")).split(",")
    ids = str(ds.attrs.get("source_object_ids", "")).split(",")
    missing = [p for p, i in zip(paths, ids) if i and i not in nwb.objects]
    if missing:
        raise InputFileError(f"{where!r} has the identifier of run {ds.attrs['run']!r}'s source but not the objects "
                             f"it modelled ({', '.join(missing)}, by object id): the file was rewritten since; pass "
                             "the file the run read with --source")


def _source(result: Path, ds, cfg, source: str | Path | None = None) -> dict:
    """The source signals (in the result file, or for a results-only file in its source), on the
    run's bins: ``rectified`` and a ``raw`` excerpt (EMG runs), ``kinematics`` and ``force``
    ((values, names)), ``spikes`` (counts of the modelled units), ``true_activations`` /
    ``true_rates`` (synthetic files) and ``trials`` ((times, column names)), where the file has them."""
    times = np.asarray(ds.time.values, dtype=float)
    bin_size = float(ds.attrs["bin_size"])
    modelled = [int(u) for u in ds.unit.values] if "firing_rates" in ds else None
    out: dict = {}
    with _open_source(result, ds, source) as nwb:
        if "emg_activations" in ds:
            out.update(_source_emg(nwb, ds, cfg, times, bin_size))
        out.update(_source_behavior(nwb, times, bin_size))
        if nwb.units is not None and len(nwb.units) > 0:
            out.update(_source_spikes(nwb, cfg, times, bin_size, modelled))
        out.update(_source_truth(nwb, times, bin_size, modelled))
        if nwb.trials is not None and len(nwb.trials) > 0:
            out["trials"] = _trial_times(nwb)
    return out


def _source_emg(nwb, ds, cfg, times: np.ndarray, bin_size: float) -> dict:
    """The modelled EMG with the run's own preprocessing: ``rectified`` (n_bins, C) on the run's
    bins, and ``raw``: (times, samples, was_raw) of the 10 s around the middle of the run."""
    from nwb_autolfads.data.preprocessing import preprocess_emg
    from nwb_autolfads.io.series import read_emg

    emg_path = next(p for p in str(ds.attrs["source_paths"]).split(",") if p and p != "units")
    sig = read_emg(nwb, emg_path, lazy=True)
    pre = preprocess_emg(sig, cfg.preprocess, cfg.windows.bin_size, cfg.data.preprocessed, cfg.windows.gap_factor)
    rectified = _align(np.concatenate(pre.bin_times), np.concatenate(pre.rectified), times, bin_size)
    mid = float(np.median(times))
    span = 5.0
    edges = np.array([mid - span, mid + span])
    if sig.timestamps is not None:
        a, b = np.searchsorted(sig.timestamps, edges)
    else:  # from the rate: no time vector for the whole recording
        a, b = np.clip(np.ceil((edges - sig.starting_time) * sig.rate), 0, sig.n_samples).astype(int)
    return {"rectified": rectified, "raw": (sig.times(a, b), np.asarray(sig.values[a:b], dtype=float), pre.was_raw)}


def _source_behavior(nwb, times: np.ndarray, bin_size: float) -> dict:
    """``kinematics`` and ``force``, each (values (n_bins, K), channel names) on the run's bins,
    where the file has them."""
    from nwb_autolfads.io.behavior import read_behavior, to_bins

    out: dict = {"unread": []}
    for modality in ("kinematics", "force"):
        try:
            sigs = read_behavior(nwb, modality)  # [] when the file has none
        except SignalError as exc:  # present but unusable (e.g. a container on two clocks): said, not scored
            log.warning("%s not scored: %s", modality, exc)
            out["unread"].append(f"{modality} not scored: {exc}")
            sigs = []
        cols, names = [], []
        for s in sigs:
            binned = to_bins(s, times, bin_size)
            cols.append(binned)
            names += s.channel_names
        if cols:
            out[modality] = (np.concatenate(cols, axis=1), names)
    return out


def _source_spikes(nwb, cfg, times: np.ndarray, bin_size: float, modelled: list[int] | None) -> dict:
    """``spikes``: the binned spike counts (n_bins, U) of the run's unit selection (for a run
    that modelled units, their columns in the run's order); empty when the units are unusable
    (the spikes metric is then left out)."""
    from nwb_autolfads.io.units import bin_spikes, read_units

    try:
        units = read_units(nwb, cfg.data.units, cfg.data.bad_units)
        counts = np.asarray(bin_spikes(units, times, bin_size), dtype=float)
        if modelled is not None:  # the modelled units' columns, in the run's order
            counts = _unit_columns(counts, [int(i) for i in units.ids], modelled, "the selected units")
        if counts is not None:
            return {"spikes": counts}
    except Exception as exc:  # unusable units: the spikes metric is left out
        log.info("units not used for evaluation: %s", exc)
    return {}


def _source_truth(nwb, times: np.ndarray, bin_size: float, modelled: list[int] | None) -> dict:
    """``true_activations`` and ``true_rates`` of ``processing/ground_truth`` (synthetic files),
    averaged into the run's bins; the rates of the modelled units only, in the run's order."""
    gt = nwb.processing.get("ground_truth")
    out = {}
    if gt is None:
        return out
    for name in ("true_activations", "true_rates"):
        if name in gt.data_interfaces:
            ts = gt[name]
            t = (np.asarray(ts.timestamps[:]) if ts.timestamps is not None
                 else regular_times(ts.starting_time, ts.data.shape[0], ts.rate))
            values = bin_mean(t, np.asarray(ts.data[:], dtype=float), times, bin_size)
            if name == "true_rates" and modelled is not None and nwb.units is not None:
                # one column per row of the Units table: the modelled units' rows, in the run's order
                values = _unit_columns(values, [int(i) for i in nwb.units.id[:]], modelled, name)
            if values is not None:
                out[name] = values
    return out


def _trial_times(nwb) -> tuple[np.ndarray, list[str]]:
    """The numeric time columns of the trials table (n_trials, K) and their names, ordered by
    their median time after ``start_time``."""
    df = nwb.trials.to_dataframe()
    cols = [c for c in df.columns if (c.endswith("_time") or c in ("start_time", "stop_time"))
            and np.issubdtype(df[c].dtype, np.number)]
    order = sorted(cols, key=lambda c: float(np.nanmedian(df[c] - df["start_time"])))
    return df[order].to_numpy(dtype=float), order


def _unit_columns(values: np.ndarray, ids: list[int], modelled: list[int], what: str) -> np.ndarray | None:
    """The columns of ``values`` (one per unit id in ``ids``) of the ``modelled`` units, in that
    order; None (with a log line) when ``values`` does not have one column per id or a modelled
    unit is not among ``ids``: columns matched by position would pair a unit with another's data."""
    if values.shape[1] != len(ids):
        log.info("%s: %d columns for %d units: not matched to the run's units", what, values.shape[1], len(ids))
        return None
    where = {u: k for k, u in enumerate(ids)}
    missing = [u for u in modelled if u not in where]
    if missing:
        log.info("%s: the run's units %s are not among them: left out", what, missing[:5])
        return None
    return values[:, [where[u] for u in modelled]]


def bin_mean(t: np.ndarray, x: np.ndarray, times: np.ndarray, bin_size: float) -> np.ndarray:
    """Samples ``x`` (n, M) at times ``t`` averaged into the bins centred at ``times`` (any
    order); NaN where a bin holds no sample."""
    if x.ndim == 1:
        x = x[:, None]
    order = np.argsort(times)
    st = times[order]
    idx = np.searchsorted(st - bin_size / 2, t, side="right") - 1
    ok = (idx >= 0) & (t < st[np.clip(idx, 0, None)] + bin_size / 2)
    counts = np.bincount(idx[ok], minlength=st.size).astype(float)
    sums = np.stack([np.bincount(idx[ok], weights=x[ok, c], minlength=st.size) for c in range(x.shape[1])], axis=1)
    out = np.empty_like(sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[order] = sums / counts[:, None]
    return out


def _phases(trials: tuple[np.ndarray, list[str]], times: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the bins in each phase between consecutive trial time columns
    (start_time -> go_cue_time -> ... -> stop_time), and between trials."""
    table, names = trials
    phases: dict[str, np.ndarray] = {}
    inside = np.zeros(times.size, bool)
    for i in range(len(names) - 1):
        mask = np.zeros(times.size, bool)
        for row in table:
            a, b = row[i], row[i + 1]
            if np.isfinite(a) and np.isfinite(b) and b > a:
                mask |= (times >= a) & (times < b)
        inside |= mask
        label = f"{names[i].removesuffix('_time')} -> {names[i + 1].removesuffix('_time')}"
        phases[label] = mask
    phases["between trials"] = ~inside
    return {k: v for k, v in phases.items() if v.any()}


# --------------------------------------------------------------------------- evaluate
def evaluate(result: str | Path, run: str | None = None, folds: int = 5, lags: int = 10,
             source: str | Path | None = None, progress: bool = False) -> Evaluation:
    """Score a stored run against the published baselines, the same way for every method.

    Recomputes the binned rectified EMG from the source with the run's own preprocessing,
    builds the baselines (rectified EMG; zero-phase low-pass over a cutoff sweep; Sanger's
    Bayesian filter over an alpha/beta grid; for spikes, Gaussian smoothing over a width sweep)
    and scores the model and each baseline by cross-validated ridge regression on what the file
    holds (see the module docstring): kinematics, force, cortical spikes, ground truth.

    Parameters
    ----------
    result : str or pathlib.Path
        An nwb-autolfads output file (local).
    run : str, optional
        The run's name; default the latest.
    folds : int
        Contiguous test folds of the cross-validation (at least 10 x ``folds`` usable bins are
        needed in all).
    lags : int
        History of the ridge decoders in bins (10 = 100 ms at 10 ms bins).
    source : str or pathlib.Path, optional
        Where the source is now (local path or URL), for a results-only file whose source has
        moved. By default the source signals are read from the result file, or, for a
        results-only file, from the source file the run read (reopened from its recorded URL or
        path, streamed if remote).
    progress : bool
        A progress bar with the time left on stderr (one step per cross-validation fold of each
        method and target scored: the decoders take most of the time, e.g. a minute for 60 s of
        8 muscles with kinematics and force on 2 cores).

    Returns
    -------
    Evaluation
        Scores per metric and method, the effective filters (spectra), notes, and the traces
        for plots (:func:`~nwb_autolfads.evaluation.report.write_report`).

    Raises
    ------
    InputFileError
        The result file cannot be read, or a results-only file's source cannot be opened or is
        not the file the run read.
    ResultsNotFoundError
        The file holds no nwb-autolfads run, or none named ``run``.
    SignalError
        Too few usable bins to cross-validate over ``folds`` folds.

    Notes
    -----
    Folds are contiguous blocks of time; a baseline's parameters and the ridge penalty are
    chosen on the last fifth of each training part, never on the test fold
    (docs/science.md, Evaluation).

    References
    ----------
    Wimalasena LN et al. (2022), J. Neural Eng. 19:036013 (the evaluation and its baselines);
    Sanger TD (2007), J. Neurophysiol. 97:1839 (the Bayesian filter).
    """
    from nwb_autolfads.config import RunConfig
    from nwb_autolfads.io.results import load_results

    result = Path(result)
    ds = load_results(result, run)
    cfg = RunConfig.from_saved(json.loads(ds.attrs["config"]),  # also a run of a version counting epochs
                               n_train=json.loads(ds.attrs.get("metrics") or "{}").get("n_train"))
    bin_size = float(ds.attrs["bin_size"])
    times = np.asarray(ds.time.values, dtype=float)
    src = _source(result, ds, cfg, source)
    unread = src.pop("unread", [])  # behaviour the file has but could not be read: said in the notes
    st = _Scoring(ds, src, times, bin_size, folds, lags, traces={"times": times}, notes=list(unread))
    if progress:
        sys.stderr.write("nwb-autolfads: evaluate: building the baselines (low-pass and Bayesian filter grids)\n")
    groups = _estimate_groups(st, cfg)
    total = folds * sum(len(_targets(st, g)) * len(g.methods) for g in groups)
    with tqdm(total=total, desc="evaluate", unit="fold", disable=not progress or total < 2, leave=False) as st.bar:
        for group in groups:
            _score_group(st, group)
    spectra = _spectra(st, groups[0]) if groups and groups[0].kind == "emg" else {}
    _add_source_traces(st)
    return Evaluation(result=str(result), run=ds.attrs["run"], bin_size=bin_size, n_bins=int(times.size),
                      channel_names=groups[0].channels if groups else [], methods=st.methods, folds=folds, lags=lags,
                      scores=st.scores, spectra=spectra, notes=st.notes, traces=st.traces)


@dataclass
class _Scoring:
    """What the steps of :func:`evaluate` read (the run ``ds``, its source signals ``src`` on the
    run's bins, the cross-validation settings) and what they add to (``scores``, ``methods``,
    ``traces``, ``notes``, as in :class:`Evaluation`)."""

    ds: object
    src: dict
    times: np.ndarray
    bin_size: float
    folds: int
    lags: int
    traces: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bar: object = None
    """The progress bar of :func:`evaluate` (one step per method and target scored), or None."""

    @property
    def fs(self) -> float:
        """Bins per second."""
        return 1.0 / self.bin_size


@dataclass
class _Group:
    """The estimates of one modality, scored together: ``methods`` maps the model and each
    baseline to its candidate estimates ({parameter label: (n_bins, C) array}; one label, ``""``,
    for methods without parameters); ``truth`` names the ground truth of the same channels in the
    source signals; ``channels`` names the channels; ``prefix`` goes before the method names in
    the table (``"rates: "`` for the rates of a model of EMG and spikes)."""

    kind: str
    methods: dict[str, dict[str, np.ndarray]]
    truth: str
    channels: list[str]
    prefix: str = ""


def _estimate_groups(st: _Scoring, cfg) -> list[_Group]:
    """The model's estimates and the baselines', per modality: EMG first (muscle activations),
    then firing rates (when the source has the spikes)."""
    groups = []
    if "emg_activations" in st.ds:
        groups.append(_emg_estimates(st))
        if cfg.preprocess.artefact_fraction is not None:
            st.notes.append("the run rejected shared artefacts (preprocess.artefact_fraction "
                            f"{cfg.preprocess.artefact_fraction:g}): the baselines filter the same cleaned rectified EMG")
    if "firing_rates" in st.ds and "spikes" in st.src:
        groups.append(_rate_estimates(st))
    if len(groups) > 1:
        for group in groups:
            if group.kind != "emg":
                group.prefix = "rates: "
    return groups


def _emg_estimates(st: _Scoring) -> _Group:
    """The model's activations, the rectified EMG, the low-pass sweep and the Bayesian grid, all
    on the same bins (those where the model and the rectified EMG are finite), each filter
    applied per segment."""
    fs = st.fs
    rect = st.src["rectified"]
    model = np.asarray(st.ds.emg_activations.values, dtype=float)
    common = np.isfinite(rect).all(axis=1) & np.isfinite(model).all(axis=1)  # every method on the same bins
    xb, bgrid, bscale = bl.bayesian_grid(rect, fs)
    segments = bl.bin_segments(st.times, st.bin_size, common)
    emg = {MODEL: {"": np.where(common[:, None], model, np.nan)},
           "rectified": {"": np.where(common[:, None], rect, np.nan)},
           "low-pass": {lab: bl.per_segment(lambda v, p=p: bl.lowpass(v, fs, **p), rect, segments)
                        for lab, p in bl.lowpass_grid(fs).items()},
           "Bayesian": {lab: bl.per_segment(lambda v, p=p: bl.bayesian_filter(v, fs, **p) * bscale, xb, segments)
                        for lab, p in bgrid.items()}}
    return _Group("emg", emg, "true_activations", [str(c) for c in st.ds.channel.values])


def _rate_estimates(st: _Scoring) -> _Group:
    """The model's firing rates and the spike-smoothing sweep (per segment)."""
    counts = st.src["spikes"]
    segments = bl.bin_segments(st.times, st.bin_size)
    sp = {MODEL: {"": np.asarray(st.ds.firing_rates.values, dtype=float)},
          "smoothed spikes": {f"{s * 1e3:g} ms": bl.per_segment(lambda v, s=s: bl.gaussian_smooth(v, st.bin_size, s),
                                                               counts, segments)
                              for s in bl.SMOOTHING_SD_S}}
    return _Group("spikes", sp, "true_rates", [f"unit {u}" for u in st.ds.unit.values])


def _score_group(st: _Scoring, group: _Group) -> None:
    """Score every method of ``group`` on each target the source has, then (EMG) its prediction
    from the cortical spikes, and keep the estimates to plot."""
    st.methods += [group.prefix + m for m in group.methods]
    choice = _score_targets(st, group)
    if group.kind == "emg" and "spikes" in st.src:
        _score_from_spikes(st, group, choice)
    _add_estimate_traces(st, group, choice)


def _targets(st: _Scoring, group: _Group) -> list[tuple]:
    """What the estimates are scored against: (metric, targets (n_bins, K), target names or
    None, per_channel, lags) for the ground truth, the kinematics (angles and velocities) and
    the force, where the source has them."""
    src = st.src
    targets = []
    if group.truth in src:
        targets.append(("truth", src[group.truth], None, True, 0))
    if "kinematics" in src:
        kin, names = src["kinematics"]
        vel = np.gradient(kin, st.bin_size, axis=0)
        targets.append(("kinematics", np.concatenate([kin, vel], axis=1),
                        names + [f"{n} velocity" for n in names], False, st.lags))
    if "force" in src:
        targets.append(("force", src["force"][0], src["force"][1], False, st.lags))
    return targets


def _score_targets(st: _Scoring, group: _Group) -> dict[str, list[str]]:
    """Cross-validated scores of every method of ``group`` on each of its :func:`_targets`, into
    ``st.scores``; returns each baseline's parameters chosen per fold by the first (primary)
    metric scored."""
    choice: dict[str, list[str]] = {}
    n_channels = next(iter(group.methods[MODEL].values())).shape[1]
    for metric, Y, names, per_channel, metric_lags in _targets(st, group):
        if per_channel and Y.shape[1] != n_channels:
            st.notes.append(f"{group.truth} has {Y.shape[1]} channels for {len(group.channels)}: not scored")
            continue
        if metric in str(st.ds.attrs.get("modalities", "")).split("+"):  # e.g. emg+force: an input, not held out
            st.notes.append(f"the model was trained on this {metric} too ({st.ds.attrs['modalities']}): its {metric} "
                            "score is not an independent test")
        res = st.scores.setdefault(metric, {})
        for m, cands in group.methods.items():
            if st.bar is not None:
                st.bar.set_postfix_str(f"{metric}: {group.prefix}{m}", refresh=False)
            out = nested_cv(cands, Y, lags=metric_lags, folds=st.folds, per_channel=per_channel,
                            on_fold=None if st.bar is None else (lambda: st.bar.update(1)))
            if metric == "force":  # reported as correlation
                out["mean_r2"], out["mean"] = out["mean"], float(np.nanmean(out["r"]))
                out["folds_r2"], out["folds"] = out["folds"], out["folds_r"]
            out["targets"] = names or group.channels
            res[group.prefix + m] = out
        if not choice:
            choice = {m: res[group.prefix + m]["chosen"] for m in group.methods if len(group.methods[m]) > 1}
    return choice


def _score_from_spikes(st: _Scoring, group: _Group, choice: dict[str, list[str]]) -> None:
    """The ``spikes`` metric: cross-validated prediction of each method's estimate from the
    binned cortical spikes, each baseline at the parameters ``choice`` (the primary metric's)
    picked per fold, else at its :func:`_default_label`."""
    counts = st.src["spikes"]
    if "spikes" in str(st.ds.attrs.get("modalities", "")):
        st.notes.append("the model was trained on these spikes too (emg+spikes): its spikes->est R^2 is not an "
                        "independent test")
    res = st.scores.setdefault("spikes", {})
    for m, cands in group.methods.items():
        fixed = choice.get(m) if len(cands) > 1 else None
        if len(cands) > 1 and fixed is None:
            fixed = [_default_label(m, cands)] * st.folds
        per_label = {}
        for lab in (set(fixed) if fixed else [""]):
            per_label[lab] = nested_cv({"spikes": counts}, cands[lab], lags=st.lags, folds=st.folds)
        if fixed:
            folds_r2 = np.array([per_label[lab]["folds"][k] for k, lab in enumerate(fixed)])
            best = Counter(fixed).most_common(1)[0][0]
            out = dict(per_label[best], folds=folds_r2, mean=float(np.nanmean(folds_r2)), chosen=fixed)
        else:
            out = per_label[""]
        out["targets"] = group.channels
        res[group.prefix + m] = out


def _add_estimate_traces(st: _Scoring, group: _Group, choice: dict[str, list[str]]) -> None:
    """The estimates shown in plots and spectra: each baseline at its most often chosen
    parameters (``traces[(kind, method)] = (label, estimate)``), and the ground truth."""
    for m, cands in group.methods.items():
        if len(cands) == 1:
            lab = ""
        elif choice.get(m):
            lab = Counter(choice[m]).most_common(1)[0][0]
        else:
            lab = _default_label(m, cands)
        st.traces[(group.kind, m)] = (lab, cands[lab])
    truth = st.src.get(group.truth)
    if truth is not None and truth.shape[1] == len(group.channels):  # drawn per column: never another's
        st.traces[(group.kind, "truth")] = truth


def _spectra(st: _Scoring, emg: _Group) -> dict:
    """The effective filters from rectified EMG to each EMG estimate (:func:`transfer_function`),
    ``spectra[phase][method]``: over the whole recording (``all``) and per behavioural phase."""
    rect = st.src["rectified"]
    ok = np.isfinite(rect).all(axis=1)
    phase_masks = {"all": ok}
    if "trials" in st.src:
        phase_masks.update({k: v & ok for k, v in _phases(st.src["trials"], st.times).items()})
    spectra: dict = {}
    for phase, mask in phase_masks.items():
        segments = bl.bin_segments(st.times, st.bin_size, mask)
        nper = 128 if phase == "all" else 32
        per_method = {}
        for m in emg.methods:
            if m == "rectified":
                continue
            lab, est = st.traces[("emg", m)]
            tf = transfer_function(np.nan_to_num(rect), np.nan_to_num(est), st.fs, segments, nperseg=nper)
            if tf is not None:
                per_method[m] = tf
        if per_method:
            spectra[phase] = per_method
        elif phase != "all":
            st.notes.append(f"phase {phase!r}: no segment of {nper} bins, no spectrum")
    return spectra


def _add_source_traces(st: _Scoring) -> None:
    """The signals plotted beside the estimates: the raw EMG excerpt, rectified EMG, kinematics,
    force, the activations' unit, the model's credible bands, the units' names and spikes."""
    ds, src, traces = st.ds, st.src, st.traces
    if "raw" in src:
        traces["raw"] = src["raw"]
    traces["rectified"] = src.get("rectified")
    if "kinematics" in src:
        traces["kinematics"] = src["kinematics"]
    if "force" in src:
        traces["force"] = src["force"]
    if "emg_activations" in ds:
        traces["unit"] = str(ds.emg_activations.attrs.get("units", ""))
    for kind, name in (("emg", "emg_activations"), ("spikes", "firing_rates")):
        if f"{name}_lower" in ds and (kind, MODEL) in traces:  # the model's credible interval, drawn as a band
            traces[(kind, "band")] = (float(ds[f"{name}_lower"].attrs["interval"]),
                                      np.asarray(ds[f"{name}_lower"].values, dtype=float),
                                      np.asarray(ds[f"{name}_upper"].values, dtype=float))
    if "firing_rates" in ds:
        traces["unit_names"] = [f"unit {u}" for u in ds.unit.values]
        if "spikes" in src:
            traces["spikes"] = src["spikes"]


def _default_label(method: str, cands: dict) -> str:
    """Parameters for a baseline when nothing in the file can choose them: a 4 Hz low-pass, the
    middle of the Bayesian grid, 40 ms spike smoothing."""
    for want in ("4 Hz", "alpha 0.4x limit, jump 0.001/bin", "40 ms"):
        if want in cands:
            return want
    return list(cands)[len(cands) // 2]


