"""A report directory people can look at: ``index.html`` and PNG figures of an evaluation.

:func:`write_report` draws (matplotlib, no display needed) the training and validation curves,
the PBT hyperparameter trajectories, example traces per muscle (raw, rectified, low-pass,
Bayesian, model, ground truth), example firing rates per unit over the unit's spikes, the
scores with their spread over folds, the model's effective filter (gain and coherence from
rectified EMG, per behavioural phase), and the latent factors and inferred inputs; and writes
them into ``index.html`` with the score table and the run's provenance.

Each figure has a function that returns the matplotlib figure (``traces_figure(ev)``,
``factors_figure(ds)``, ...; None when the run has nothing to draw), so its layout can be
checked without a browser; ``benchmarks/report_screenshot.py`` photographs whole reports in
headless Chromium.
"""

from __future__ import annotations

import html
import json
import textwrap
from pathlib import Path

import numpy as np

from nwb_autolfads.errors import MissingDependencyError, OutputError
from nwb_autolfads.evaluation.comparison import MODEL, Evaluation

__all__ = ["write_report", "traces_figure", "rates_figure", "scores_figure", "spectra_figure",
           "training_curves_figure", "pbt_figure", "factors_figure", "scaled_unit"]

COLORS = {MODEL: "#d62728", "rectified": "#bbbbbb", "low-pass": "#1f77b4", "Bayesian": "#2ca02c",
          "smoothed spikes": "#1f77b4", "raw": "#999999", "truth": "#000000"}
_TITLES = {"kinematics": "kinematics decoding R² (ridge, {h} history)",
           "force": "force prediction r (ridge, {h} history)",
           "spikes": "prediction of each estimate from cortical spikes, R² (ridge, {h} history)"}
_VOLTS = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolts": 1e-3, "uv": 1e-6, "µv": 1e-6,
          "microvolts": 1e-6}
LEGEND_FONTSIZE = 8


def _title(metric: str, ev: Evaluation) -> str:
    if metric == "truth":
        emg = "rectified" in ev.methods
        rates = any(m.endswith("smoothed spikes") for m in ev.methods)
        what = ("the true activations and, for the rates, the true firing rates" if emg and rates
                else "the true firing rates" if rates else "the true activations")
        return f"R² against {what} (cross-validated affine map per channel)"
    return _TITLES[metric].format(h=f"{ev.lags * ev.bin_size * 1e3:g} ms")


def require_matplotlib() -> None:
    """Check that matplotlib, which draws the report, is installed (it is in the ``report`` extra,
    not a dependency of the package).

    Raises
    ------
    MissingDependencyError
        matplotlib cannot be imported.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError('the report needs matplotlib, which is not installed: pip install '
                                     '"nwb-autolfads[report]" (or pip install matplotlib)') from None


def _plt():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False,
                         "font.size": 9})
    return plt


def _fit_titles(fig) -> None:
    """Wrap the figure's title and each axes' title onto more lines until it fits (the
    figure's width, or its axes' width): nothing is cut off at the figure's edges."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(fig._suptitle, fig.bbox.width * 0.98)] if fig._suptitle is not None else []
    for ax in fig.axes:
        if ax.get_visible() and ax.axison:
            texts.append((ax.title, max(ax.bbox.width * 1.1, 60.0)))
    changed = False
    for text, room in texts:
        words = " ".join(text.get_text().split())
        width = len(words)
        while words and text.get_window_extent(renderer).width > room and width > 12:
            width = int(width * 0.85)
            text.set_text(textwrap.fill(words, width))
            changed = True
    if changed:
        fig.canvas.draw()


def _save(fig, folder: Path, name: str) -> str:
    fig.savefig(folder / name)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def _figure(plt, *args, **kwargs):
    return plt.subplots(*args, layout="constrained", **kwargs)


# --------------------------------------------------------------------------- training and PBT
def training_curves_figure(ds):
    """The chosen model's training and validation NLL per validation check (x: optimisation
    steps trained; runs of earlier versions: epochs trained, 1 = after the first epoch), or None
    when the run has no curves."""
    if "valid_nll" not in ds:
        return None
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, ax = _figure(plt, figsize=(7, 3.2))
    if "step" in ds.coords:
        epochs, xlabel = ds.step.values, "optimisation steps trained (the chosen model, across its generations)"
    else:  # a run of a version that counted epochs
        epochs, xlabel = ds.epoch.values + 1, "epochs trained (the chosen model, across its generations)"
    for var, label, style in (("train_nll", "training", "-"), ("valid_nll", "validation", "-"),
                              ("smoothed_valid_nll", "validation (smoothed: the stopping metric)", "--"),
                              ("sample_valid_nll", "held-out samples (sample validation)", ":")):
        if var in ds:
            ax.plot(epochs, ds[var].values, style, label=label, marker="." if epochs.size < 30 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("reconstruction NLL per element")
    ax.set_title("Training curves")
    ax.legend(frameon=False, fontsize=LEGEND_FONTSIZE)
    _fit_titles(fig)
    return fig


def _hyperparameter_axis(ax, values: np.ndarray) -> str:
    """A log axis with few labels for a hyperparameter that spans a decade or more; a linear
    axis with at most 5 ticks for a narrower one (a log axis over a narrow range labels every
    minor tick). Returns what to add to the panel's title: the power of ten the linear ticks
    are in (``×1e-3``), or ''."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(numticks=5))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return ""
    exp = int(np.floor(np.log10(v.max()))) if v.size else 0
    exp = exp if exp < -1 or exp > 3 else 0
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / 10.0 ** exp:.3g}"))
    return f" (×1e{exp})" if exp else ""


def pbt_figure(ds):
    """Every member's hyperparameters and smoothed validation NLL per generation (numbered from
    1, as the console counts), with the winner's lineage; None without a population."""
    if "pbt_history" not in ds.attrs:
        return None
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    hist = pd.DataFrame(json.loads(ds.attrs["pbt_history"]))
    if hist.empty or hist["member"].nunique() < 2:
        return None
    metrics = json.loads(ds.attrs.get("metrics") or "{}")
    lineage = metrics.get("pbt", {}).get("lineage") or metrics.get("lineage") or []
    hps = [c for c in ("lr", "dropout", "cd_rate", "l2_gen_scale", "l2_con_scale", "kl_co_scale", "kl_ic_scale")
           if c in hist]
    plt = _plt()
    n = len(hps) + 1
    cols = 4
    rows = int(np.ceil(n / cols))
    fig, axes = _figure(plt, rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.4), squeeze=False)
    chain = {(int(r["generation"]), int(r["member"])) for r in lineage}
    gen = hist["generation"].to_numpy() + 1  # stored from 0; the console and the summary count from 1
    for ax, col in zip(axes.flat, ["metric"] + hps):
        for member in hist["member"].unique():
            g = (hist["member"] == member).to_numpy()
            ax.plot(gen[g], hist[col].to_numpy()[g], color="#bbbbbb", lw=0.8, marker=".", ms=3)
        if chain:
            on = np.array([(int(a), int(b)) in chain for a, b in zip(hist["generation"], hist["member"])])
            order = np.argsort(gen[on], kind="stable")
            ax.plot(gen[on][order], hist[col].to_numpy()[on][order], color=COLORS[MODEL], lw=1.8, marker="o", ms=3,
                    label="the winner's lineage")
        power = "" if col == "metric" else _hyperparameter_axis(ax, hist[col].to_numpy())
        ax.set_title("smoothed validation NLL" if col == "metric" else col + power)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if chain:
        axes.flat[0].legend(frameon=False, fontsize=LEGEND_FONTSIZE)
    fig.suptitle("Population-based training: every member (grey) per generation; red: the winner's ancestry")
    _fit_titles(fig)
    return fig


# --------------------------------------------------------------------------- example traces
def scaled_unit(unit: str, magnitude: float) -> tuple[float, str]:
    """A multiplier and unit label that show values of about ``magnitude`` (in ``unit``) as
    numbers between 1 and 1000: volts with an SI prefix (µV, mV, ...), other units with a
    power of ten (``a.u. ×1e-3``)."""
    magnitude = abs(float(magnitude)) if np.isfinite(magnitude) and magnitude else 1.0
    per_volt = _VOLTS.get(unit.strip().lower())
    if per_volt is not None:
        volts = magnitude * per_volt
        for prefix, size in (("", 1.0), ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9)):
            if volts >= size or prefix == "n":
                return per_volt / size, f"{prefix}V"
    exp = int(3 * np.floor(np.log10(magnitude) / 3))
    return 10.0 ** -exp, (f"{unit} ×1e{exp}" if exp else unit) if unit else (f"×1e{exp}" if exp else "")


def _window(times: np.ndarray, seconds: float) -> tuple[np.ndarray, float, float]:
    mid = float(np.median(times))
    a, b = mid - seconds / 2, mid + seconds / 2
    return (times >= a) & (times < b), a, b


def _affine_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x`` mapped per column by the least-squares affine map onto ``y`` (bins where either is
    NaN left out of the fit)."""
    out = np.full(x.shape, np.nan)
    for c in range(x.shape[1]):
        ok = np.isfinite(x[:, c]) & np.isfinite(y[:, c])
        if ok.sum() > 2 and np.std(x[ok, c]) > 0:
            slope, icpt = np.polyfit(x[ok, c], y[ok, c], 1)
            out[:, c] = slope * x[:, c] + icpt
    return out


def _number(v: float) -> str:
    """One tick format for every axis: 3 significant digits, never in exponent notation
    (values are scaled to about 1-1000 first)."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _ticks(ax, top: float, mult: float) -> None:
    ax.set_yticks([0.0, top], ["0", _number(top * mult)])


def _legend_on_top(ax, ncol: int = 3) -> None:
    """The axes' legend just above it (the layout keeps room for it under the figure's title),
    readable: font size 8, handles at least 1.5 points wide."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        leg = ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(labels), ncol),
                        frameon=False, fontsize=LEGEND_FONTSIZE)
        for h in leg.legend_handles:
            if hasattr(h, "get_linewidth") and hasattr(h, "set_linewidth") and np.ndim(h.get_linewidth()) == 0:
                h.set_linewidth(max(1.5, float(h.get_linewidth())))


def _band(ax, band: tuple | None, times: np.ndarray, window: np.ndarray, c: int) -> None:
    """Shade the model's credible interval ``band`` = (probability, lower, upper) of column ``c``."""
    from nwb_autolfads.io.results import interval_percent

    if band is None:
        return
    level, lower, upper = band
    ax.fill_between(times[window], lower[window, c], upper[window, c], color=COLORS[MODEL], alpha=0.22, lw=0,
                    label=f"{MODEL}: {interval_percent(level)} credible interval")


def traces_figure(ev: Evaluation, seconds: float = 10.0):
    """Example traces per muscle (raw, rectified, baselines, model, and the ground truth when
    the file has it), on one y scale per muscle in the source's units; None without EMG."""
    tr = ev.traces
    times = tr["times"]
    if tr.get("rectified") is None:
        return None
    plt = _plt()
    window, a, b = _window(times, seconds)
    names = ev.channel_names[:12]
    rect = tr["rectified"]
    tops = [float(np.nanquantile(rect[window, c], 0.99)) or 1.0 for c in range(len(names))]
    mult, unit_label = scaled_unit(tr.get("unit") or "a.u.", float(np.nanmax(tops)))
    truth = tr.get(("emg", "truth"))
    if truth is not None:
        truth = _affine_fit(truth, rect)  # the truth has no unit: shown mapped onto the rectified EMG
    fig, axes = _figure(plt, len(names), 1, figsize=(10, 1.4 * len(names) + 1.4), sharex=True, squeeze=False)
    raw = tr.get("raw")
    for c, (ax, name) in enumerate(zip(axes[:, 0], names)):
        top = tops[c]
        if raw is not None and raw[2]:  # raw EMG below zero, on its own scale
            t_raw, v_raw, _ = raw
            keep = (t_raw >= a) & (t_raw < b)
            r = v_raw[keep, c] - np.median(v_raw[keep, c])
            q = float(np.nanquantile(np.abs(r), 0.999)) or 1.0
            ax.plot(t_raw[keep], -0.55 * top + 0.45 * top * r / q, color=COLORS["raw"], lw=0.3,
                    label="raw EMG (below zero, own scale)")
        ax.plot(times[window], rect[window, c], color=COLORS["rectified"], lw=0.6, label="rectified EMG (model bins)")
        _band(ax, tr.get(("emg", "band")), times, window, c)
        for m in ("low-pass", "Bayesian", MODEL):
            if ("emg", m) in tr:
                lab, est = tr[("emg", m)]
                ax.plot(times[window], est[window, c], color=COLORS[m], lw=1.4 if m == MODEL else 0.9,
                        label=f"{m} ({lab})" if lab else m)
        if truth is not None:
            ax.plot(times[window], truth[window, c], color=COLORS["truth"], lw=0.9, ls="--",
                    label="ground truth (affine fit to the rectified EMG)")
        ax.set_ylim(-1.05 * top if raw is not None and raw[2] else 0, 1.1 * top)
        _ticks(ax, top, mult)
        ax.set_ylabel(f"{name}\n({unit_label})", rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    _legend_on_top(axes[0, 0])
    fig.suptitle(f"Example {seconds:g} s per muscle, in the source's units ({unit_label})")
    _fit_titles(fig)
    return fig


def rates_figure(ev: Evaluation, seconds: float = 10.0):
    """Example firing rates per unit (Hz: the model, smoothed spikes and the true rates when the
    file has them) over the unit's spikes (ticks below zero); None without rates."""
    tr = ev.traces
    units = tr.get("unit_names") or []
    key = ("spikes", MODEL)
    if not units or key not in tr:
        return None
    plt = _plt()
    times = tr["times"]
    window, _, _ = _window(times, seconds)
    units = units[:12]
    counts = tr.get("spikes")
    truth = tr.get(("spikes", "truth"))
    fig, axes = _figure(plt, len(units), 1, figsize=(10, 0.95 * len(units) + 1.6), sharex=True, squeeze=False)
    for c, (ax, name) in enumerate(zip(axes[:, 0], units)):
        lines = [(MODEL, tr[key][1], MODEL, 1.4, "-")]
        if ("spikes", "smoothed spikes") in tr:
            lab, est = tr[("spikes", "smoothed spikes")]
            lines.insert(0, ("smoothed spikes", est, f"smoothed spikes ({lab})", 0.9, "-"))
        if truth is not None:
            lines.append(("truth", truth, "true rate", 0.9, "--"))
        top = max(float(np.nanmax(v[window, c])) if np.isfinite(v[window, c]).any() else 0.0
                  for _, v, _, _, _ in lines) or 1.0
        if counts is not None:
            spk = window & (counts[:, c] > 0)
            ax.vlines(times[spk], -0.3 * top, -0.05 * top, color="k", lw=0.5, label="spikes (bins with a spike)")
        _band(ax, tr.get(("spikes", "band")), times, window, c)
        for m, v, label, lw, ls in lines:
            ax.plot(times[window], v[window, c], color=COLORS[m], lw=lw, ls=ls, label=label)
        ax.set_ylim(-0.32 * top if counts is not None else 0, 1.1 * top)
        _ticks(ax, top, 1.0)
        ax.set_ylabel(f"{name}\n(Hz)", rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    _legend_on_top(axes[0, 0])
    more = f" (the first 12 of {len(tr['unit_names'])})" if len(tr["unit_names"]) > 12 else ""
    fig.suptitle(f"Example {seconds:g} s per unit{more}: firing rates in Hz over the unit's spikes")
    _fit_titles(fig)
    return fig


# --------------------------------------------------------------------------- scores
def _tied(means: list[float]) -> bool:
    """Every method's score is the same to the 3 decimals the table shows."""
    return len(means) > 1 and len({f"{m:.3f}" for m in means}) == 1


def scores_figure(ev: Evaluation, metric: str):
    """Bars of one metric: the mean per method with its spread over folds, and per target
    (methods whose targets differ, such as muscles and units, side by side). When every
    method scores the same to 3 decimals, 1 − score is shown on a log axis instead, and the
    title says whether they tie within the spread over folds."""
    per_method = ev.scores[metric]
    methods = [m for m in ev.methods if m in per_method]
    plt = _plt()
    fig, (ax, ax2) = _figure(plt, 1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 2.2]})
    means = [per_method[m]["mean"] for m in methods]
    fold_means = [np.nanmean(np.asarray(per_method[m]["folds"], dtype=float), axis=1) for m in methods]
    colors = [COLORS.get(m.removeprefix("rates: "), "#777777") for m in methods]
    name = "r" if metric == "force" else "R²"
    tied = _tied(means)
    per_target = [np.asarray(per_method[m]["r"] if metric == "force" else per_method[m]["per_target"], dtype=float)
                  for m in methods]
    show, lo = _mean_bars(ax, methods, means, fold_means, colors, name, tied)
    # per target: one block of bars per set of targets (the muscles; the units for rates)
    blocks: dict[tuple, list[int]] = {}
    for i, m in enumerate(methods):
        blocks.setdefault(tuple(per_method[m]["targets"]), []).append(i)
    x0, ticks, labels = 0.0, [], []
    for targets, members in blocks.items():
        width = 0.8 / len(members)
        for j, i in enumerate(members):
            ax2.bar(x0 + np.arange(len(targets)) + j * width, show(per_target[i]), width, color=colors[i],
                    label=methods[i])
        ticks += list(x0 + np.arange(len(targets)) + 0.4 - width / 2)
        labels += list(targets)
        x0 += len(targets) + 0.6
    ax2.set_xticks(ticks, labels, rotation=30, ha="right", fontsize=7)
    if tied:
        ax2.set_yscale("log")
        ax2.set_ylabel(f"1 − {name}")
    else:
        ax2.set_ylim(lo, 1.0)
    _legend_on_top(ax2, ncol=min(len(methods), 4))
    ax2.get_legend().set_title("per target (pooled over folds)", prop={"size": LEGEND_FONTSIZE})
    fig.suptitle(_title(metric, ev))
    _fit_titles(fig)
    return fig


def _mean_bars(ax, methods: list[str], means: list[float], fold_means: list[np.ndarray], colors: list[str],
               name: str, tied: bool):
    """The left panel of :func:`scores_figure`: each method's mean score with its folds as dots
    (``tied``: 1 − score on a log axis). Returns the transform of a score to its bar height and
    the bottom of the linear axis (the per-target panel shares both)."""
    spreads = [float(np.std(f)) for f in fold_means]
    if tied:  # e.g. force r 0.996 for every method: the distance from 1 separates them
        show = lambda v: np.clip(1.0 - np.asarray(v, dtype=float), 1e-6, None)  # noqa: E731
        ax.bar(range(len(methods)), show(means), color=colors)
        for i, f in enumerate(fold_means):
            ax.plot(np.full(f.size, i) + np.linspace(-0.15, 0.15, f.size), show(f), "k.", ms=3)
        ax.set_yscale("log")
        ax.set_ylabel(f"1 − {name} (log; lower is better)")
        within = max(means) - min(means) < max(spreads)
        ax.set_title(f"every method {name} = {means[0]:.3f}: "
                     + ("a tie within the SD over folds" if within else "1 − mean shown; dots: folds"), fontsize=8)
    else:
        show = lambda v: np.asarray(v, dtype=float)  # noqa: E731
        ax.bar(range(len(methods)), means, color=colors, yerr=spreads, capsize=3)
        for i, f in enumerate(fold_means):
            ax.plot(np.full(f.size, i) + np.linspace(-0.15, 0.15, f.size), f, "k.", ms=3)
        ax.set_ylabel(name)
        ax.set_title("mean over targets; bar: SD over folds, dots: folds", fontsize=8)
    ax.set_xticks(range(len(methods)), methods, rotation=20 if len(methods) <= 4 else 35, ha="right",
                  rotation_mode="anchor")
    lo = max(-0.5, min(0.0, min(np.nanmin(f) for f in fold_means)))
    if not tied:
        ax.set_ylim(lo, 1.0)
        for i, v in enumerate(means):
            if v < lo:  # off the axis: say how far
                ax.text(i, lo, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    return show, lo


# --------------------------------------------------------------------------- spectra, factors
def _phase_label(phase: str) -> str:
    return "whole recording" if phase == "all" else phase


def spectra_figure(ev: Evaluation):
    """Gain and coherence from rectified EMG to each estimate, one column per behavioural phase
    (the whole recording first), each titled with the number of Welch segments it averages;
    None without spectra."""
    if not ev.spectra:
        return None
    plt = _plt()
    phases = list(ev.spectra)
    fig, axes = _figure(plt, 2, len(phases), figsize=(max(7.0, 2.7 * len(phases) + 1.2), 5.6), squeeze=False,
                        sharex=True)
    for j, phase in enumerate(phases):
        for m, tf in ev.spectra[phase].items():
            axes[0, j].semilogy(tf["freq"], tf["gain"], color=COLORS.get(m, "#777"), label=m)
            axes[1, j].plot(tf["freq"], tf["coherence"], color=COLORS.get(m, "#777"), label=m)
        tf = next(iter(ev.spectra[phase].values()))
        seg = f"{tf['n_segments']} segments"
        if tf.get("nperseg"):
            seg += f" of {tf['nperseg'] * ev.bin_size:g} s"
        axes[0, j].set_title(f"{_phase_label(phase)}\n({seg})", fontsize=8)
        axes[1, j].set_xlabel("frequency (Hz)")
        axes[1, j].set_ylim(0, 1.02)
    axes[0, 0].set_ylabel("gain |P_xy / P_xx|\n(estimate per unit rectified EMG)")
    axes[1, 0].set_ylabel("coherence with\nrectified EMG")
    axes[0, 0].legend(frameon=False, fontsize=LEGEND_FONTSIZE)
    fig.suptitle("Effective filter from rectified EMG to each estimate (mean over muscles)")
    _fit_titles(fig)
    return fig


def factors_figure(ds, seconds: float = 10.0):
    """The latent factors (heatmap, with a labelled colour bar) and the inferred inputs over the
    same stretch of time, on aligned time axes; None without factors."""
    if "factors" not in ds:
        return None
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    times = ds.time.values
    w, _, _ = _window(times, seconds)
    has_inputs = "inferred_inputs" in ds and ds.inferred_inputs.shape[1] > 0
    rows = 2 if has_inputs else 1
    # a narrow second column holds the colour bar, so both panels keep the same width
    fig, axes = _figure(plt, rows, 2, figsize=(10, 5.2 if has_inputs else 3), squeeze=False,
                        gridspec_kw={"width_ratios": [60, 1]})
    ax, cax = axes[0]
    f = ds.factors.values[w]
    t = times[w]
    bin_size = float(ds.attrs.get("bin_size") or (np.median(np.diff(t)) if t.size > 1 else 1.0))
    edges = np.r_[t - bin_size / 2, t[-1] + bin_size / 2]
    lim = float(np.nanmax(np.abs(f))) or 1.0
    im = ax.pcolormesh(edges, np.arange(f.shape[1] + 1) - 0.5, f.T, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_ylim(f.shape[1] - 0.5, -0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(8, f.shape[1])))
    ax.set_ylabel("factor")
    ax.set_title("Latent factors (the generator's low-dimensional output)")
    fig.colorbar(im, cax=cax, label="factor value (a.u.)")
    xlim = (edges[0], edges[-1])
    ax.set_xlim(xlim)
    if has_inputs:
        ax_u = axes[1, 0]
        axes[1, 1].axis("off")
        u = ds.inferred_inputs.values[w]
        for k in range(u.shape[1]):
            ax_u.plot(t, u[:, k], lw=0.8, label=f"input {k}")
        ax_u.set_xlim(xlim)
        ax_u.set_ylabel("inferred input (a.u.)")
        ax_u.set_title("Inferred inputs (the controller's output)")
        if u.shape[1] <= 10:
            ax_u.legend(frameon=False, fontsize=LEGEND_FONTSIZE, loc="upper right", ncol=min(u.shape[1], 5))
        ax.tick_params(labelbottom=False)
    axes[-1, 0].set_xlabel("time (s)")
    _fit_titles(fig)
    return fig


def _written(fig, folder: Path, name: str) -> str | None:
    return None if fig is None else _save(fig, folder, name)


def _intro_html(ev: Evaluation) -> str:
    """The sentence above the table: what was modelled, and how to read the table that follows
    (only what is there: no table, no words about bold cells)."""
    parts = [f"{ev.n_bins} bins of {ev.bin_size * 1e3:g} ms"]
    units = ev.traces.get("unit_names") or []
    muscles = [c for c in ev.channel_names if c not in units]
    if muscles:
        parts.append(f"muscles: {', '.join(muscles)}")
    if units:
        parts.append(f"{len(units)} units: {', '.join(units)}")
    text = "; ".join(parts) + "."
    if any(ev.scores.values()):
        text += (" Scores are cross-validated over contiguous folds; ± is the SD over folds; the best per column "
                 "is bold (every method that ties with it to 3 decimals too)")
        if any(s.get("chosen") for per in ev.scores.values() for s in per.values()):
            text += "; small text: the baseline parameters chosen most often"
        text += "."
    return f"<p>{html.escape(text)}</p>"


def _table_html(ev: Evaluation) -> str:
    metrics = [m for m in ("truth", "kinematics", "force", "spikes") if m in ev.scores]
    if not metrics:
        return "<p>No kinematics, force, cortical spikes or ground truth in the file: nothing to score against.</p>"
    head = "".join(f"<th>{html.escape(_title(m, ev))}</th>" for m in metrics)
    rows = []
    for method in ev.methods:
        cells = []
        for m in metrics:
            s = ev.scores[m].get(method)
            if s is None:
                cells.append("<td>–</td>")
                continue
            # the best among the estimates of the same signal (EMG, or the rates: "rates: ...")
            rates = method.startswith("rates: ")
            best = max(v["mean"] for k, v in ev.scores[m].items() if k.startswith("rates: ") == rates)
            spread = np.std(np.nanmean(np.asarray(s["folds"], dtype=float), axis=1))
            chosen = ""
            if s.get("chosen"):
                from collections import Counter

                chosen = f"<br><small>{html.escape(Counter(s['chosen']).most_common(1)[0][0])}</small>"
            bold = f"{s['mean']:.3f}" == f"{best:.3f}"
            val = f"{s['mean']:.3f} ± {spread:.3f}"
            cells.append(f"<td>{'<b>' + val + '</b>' if bold else val}{chosen}</td>")
        rows.append(f"<tr><th>{html.escape(method)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


REPORT_FILES = ("index.html", "evaluation.json")
"""Files every report folder holds (with its PNG figures)."""


def is_report_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a report of :func:`write_report` and nothing else: index.html,
    evaluation.json (valid JSON) and PNG figures that index.html shows. A user's own PNG (one the
    page does not show), or any other file or folder, makes it not a report."""
    return Path(folder).is_dir() and not _not_of_a_report(Path(folder))


def _not_of_a_report(folder: Path) -> list[str]:
    """The entries of the folder ``folder`` that are not part of a report (sorted names), or, when
    there are none but the report itself is incomplete or invalid, its files' names; [] for a report."""
    import json

    try:
        page = (folder / "index.html").read_text(errors="replace") if (folder / "index.html").is_file() else ""
        json.loads((folder / "evaluation.json").read_text())
        whole = bool(page)
    except (OSError, ValueError):
        whole = False
    foreign = sorted(e.name for e in folder.iterdir() if e.name not in REPORT_FILES and not (
        e.is_file() and e.name.endswith(".png") and f"src='{e.name}'" in page))
    return foreign or ([] if whole and all((folder / f).is_file() for f in REPORT_FILES) else sorted(REPORT_FILES))


def check_report_folder(folder: str | Path, overwrite: bool = False) -> Path:
    """Fail early if ``folder`` cannot take a report: it must be missing, empty or a previous
    report (:func:`is_report_folder`; replaced whole); and matplotlib, which draws the report,
    must be installed. A folder holding anything else is never replaced, whatever ``overwrite``
    says: it may hold the input, other results or the user's own files.

    Parameters
    ----------
    folder : the report folder (relative to the working directory, ``.`` included).
    overwrite : no effect on which folders are accepted (kept so that callers passing the
        output's ``--overwrite`` still work; it once let a report replace any folder, which
        deleted a project folder given as ``--report``).

    Returns
    -------
    pathlib.Path
        ``folder`` as an absolute path.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed (``pip install "nwb-autolfads[report]"``).
    OutputError
        ``folder`` is a file, its parent does not exist, or it is a non-empty folder that is not
        a previous report.
    """
    require_matplotlib()
    folder = Path(folder).absolute()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"report folder {str(folder)!r} is a file: give a folder for the report")
    names = _not_of_a_report(folder) if folder.is_dir() and any(folder.iterdir()) else []
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise OutputError(f"report folder {str(folder)!r} is not empty and is not a previous report (it holds "
                          f"{shown}): a report replaces its folder whole, so choose an empty or new folder, e.g. "
                          f"{str(folder / 'report')!r}; nothing in it was changed"
                          + (" (--overwrite applies to the NWB output only)" if overwrite else ""))
    if folder.parent == folder or not folder.name:
        raise OutputError(f"report folder {str(folder)!r} is a file system's root: choose an empty or new folder")
    if not folder.parent.is_dir():
        raise OutputError(f"the folder {str(folder.parent)!r} of the report does not exist: create it or choose another")
    return folder


def write_report(ev: Evaluation, folder: str | Path, ds=None, overwrite: bool = False) -> Path:
    """Write an evaluation as a report folder: ``index.html``, PNG figures and ``evaluation.json``.

    The report is written into a temporary folder beside ``folder``, which then replaces
    ``folder`` whole: a previous report leaves no stale figures, and an interruption leaves no
    half-written report.

    Parameters
    ----------
    ev : Evaluation
        What :func:`~nwb_autolfads.evaluation.comparison.evaluate` returned.
    folder : str or pathlib.Path
        The report folder: missing, empty or a previous report (:func:`check_report_folder`).
    ds : xarray.Dataset, optional
        The run (:func:`~nwb_autolfads.io.results.load_results`), for the training curves, PBT
        history and factors; read from ``ev.result`` if not given.
    overwrite : bool
        No effect on which folders are accepted (:func:`check_report_folder`): a folder holding
        anything other than a previous report is never replaced.

    Returns
    -------
    pathlib.Path
        The path of ``index.html``.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed (``pip install "nwb-autolfads[report]"``).
    OutputError
        ``folder`` is a file, its parent folder does not exist, or it is not empty and not a
        previous report.
    ImportError
        matplotlib is not installed.
    """
    import os
    import shutil

    folder = check_report_folder(folder, overwrite)
    tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_into(ev, tmp, ds)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "index.html"


def _write_into(ev: Evaluation, folder: Path, ds=None) -> Path:
    """Write the report's files into ``folder``: ``evaluation.json``, the figures and ``index.html``."""
    from nwb_autolfads.io.results import load_results

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if ds is None:
        ds = load_results(ev.result, ev.run)
    ev.to_json(folder / "evaluation.json")
    figs = _estimate_figures(ev, folder, ds) + _score_figures(ev, folder) + _model_figures(ev, folder, ds)
    index = folder / "index.html"
    index.write_text(_page(ev, ds, figs))
    return index


def _estimate_figures(ev: Evaluation, folder: Path, ds) -> list[tuple[str, str]]:
    """The example traces and rates, written into ``folder``, as [(caption, file name)]."""
    from nwb_autolfads.io.results import _json_dict, interval_percent

    emg_truth = (" Black dashes: the ground truth, affine-fitted to the rectified EMG (it has no unit)."
                 if ("emg", "truth") in ev.traces else "")
    rate_truth = " Black dashes: the true rate (Hz)." if ("spikes", "truth") in ev.traces else ""
    # runs before the band was calibrated stored the posterior samples' quantiles alone (no interval_calibration)
    widened = "interval_calibration" in _json_dict(ds.attrs.get("metrics"))
    how = "posterior samples, widened by the model's estimated error" if widened else "posterior-sample quantiles"
    emg_band, rate_band = (f" Red shading: its central {interval_percent(ev.traces[(k, 'band')][0])} credible interval "
                           f"({how}; approximate)." if (k, "band") in ev.traces
                           else "" for k in ("emg", "spikes"))
    return _kept([
        ("Example traces. Grey: rectified EMG in model bins (raw EMG below zero, on its own scale); blue: the "
         "low-pass filter and green: the Bayesian filter, each at the parameters cross-validation chose most "
         "often; red: nwb-autolfads." + emg_band + emg_truth, _written(traces_figure(ev), folder, "traces.png")),
        ("Example firing rates per unit, in Hz, with the unit's spikes as ticks below zero (one tick per bin "
         "with a spike). Blue: Gaussian smoothing of the spikes at the width cross-validation chose most "
         "often; red: nwb-autolfads." + rate_band + rate_truth, _written(rates_figure(ev), folder, "rates.png"))])


def _score_figures(ev: Evaluation, folder: Path) -> list[tuple[str, str]]:
    """One bar figure per metric, written into ``folder``, as [(caption, file name)]."""
    figs = []
    for metric in ev.scores:
        name = _written(scores_figure(ev, metric), folder, f"scores_{metric}.png")
        figs.append((_title(metric, ev) + ". Higher is better. Folds are contiguous blocks of time; each "
                     "baseline's parameters were chosen inside the training folds. Where every method scores the "
                     "same to 3 decimals, the bars show 1 − score (log axis) to separate them.", name))
    return figs


def _model_figures(ev: Evaluation, folder: Path, ds) -> list[tuple[str, str]]:
    """The effective filters, training curves, PBT hyperparameters and factors, written into
    ``folder``, as [(caption, file name)] (those that apply)."""
    return _kept([
        ("What each method does to the rectified EMG, as a filter: gain and coherence per frequency, averaged "
         "over Welch segments (their number and length above each column) of the whole recording and, where "
         "the file has a trials table, of each behavioural phase between its time columns. A low-pass filter "
         "passes low frequencies with gain 1 and cuts above its cutoff; the model's filter adapts to the "
         "signal.", _written(spectra_figure(ev), folder, "transfer_functions.png")),
        ("Training curves of the chosen model (negative log-likelihood per data element), per validation check.",
         _written(training_curves_figure(ds), folder, "training_curves.png")),
        ("Hyperparameters of every member of the population per generation (numbered from 1, as the console "
         "counts).", _written(pbt_figure(ds), folder, "pbt_hyperparameters.png")),
        ("Latent factors and inferred inputs over an example stretch.",
         _written(factors_figure(ds), folder, "factors.png"))])


def _kept(figs: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """The figures that were written (a figure that does not apply has no file name)."""
    return [(caption, name) for caption, name in figs if name]


def _page(ev: Evaluation, ds, figs: list[tuple[str, str]]) -> str:
    """``index.html``: the scores table, notes, figures with captions and the run's provenance."""
    provenance = {k: ds.attrs.get(k, "") for k in ("started", "finished", "software_version", "git_revision",
                                                    "random_seed", "source_file_identifier", "command")}
    hyper = ds.attrs.get("hyperparameters") or "{}"
    body = [f"<h1>nwb-autolfads evaluation: {html.escape(Path(ev.result).name)}, run {html.escape(ev.run)}</h1>",
            _intro_html(ev), _table_html(ev)]
    if ev.notes:
        body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in ev.notes) + "</ul>")
    for caption, name in figs:
        body.append(f"<figure><img src='{name}' alt='{html.escape(name)}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")
    body.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in provenance.items()) + "</table>")
    body.append(f"<h3>Hyperparameters of the result</h3><pre>{html.escape(json.dumps(json.loads(hyper), indent=1))}</pre>")
    body.append("<p>Numbers as JSON: <a href='evaluation.json'>evaluation.json</a></p>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>nwb-autolfads evaluation</title><style>"
            "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            "figure{margin:2em 0}img{max-width:100%}figcaption{color:#555;font-size:90%}</style></head><body>"
            + "\n".join(body) + "</body></html>")
