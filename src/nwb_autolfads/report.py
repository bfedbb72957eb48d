"""A report directory people can look at: ``index.html`` and PNG figures of an evaluation.

:func:`write_report` draws (matplotlib, no display needed) the training and validation curves,
the PBT hyperparameter trajectories, example traces per muscle (raw, rectified, low-pass,
Bayesian, model), the scores with their spread over folds, the model's effective filter (gain
and coherence from rectified EMG, per behavioural phase), and the latent factors and inferred
inputs; and writes them into ``index.html`` with the score table and the run's provenance.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from .errors import OutputError
from .evaluation import MODEL, Evaluation

__all__ = ["write_report"]

COLORS = {MODEL: "#d62728", "rectified": "#bbbbbb", "low-pass": "#1f77b4", "Bayesian": "#2ca02c",
          "smoothed spikes": "#1f77b4", "raw": "#999999"}
_TITLES = {"truth": "R² against the true activations (cross-validated affine map per channel)",
           "kinematics": "kinematics decoding R² (ridge, {h} history)",
           "force": "force prediction r (ridge, {h} history)",
           "spikes": "prediction of each estimate from cortical spikes, R² (ridge, {h} history)"}


def _title(metric: str, ev: Evaluation) -> str:
    return _TITLES[metric].format(h=f"{ev.lags * ev.bin_size * 1e3:g} ms")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False,
                         "font.size": 9})
    return plt


def _save(fig, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def _training_curves(ds, folder: Path) -> str | None:
    if "valid_nll" not in ds:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    epochs = ds.epoch.values
    for var, label, style in (("train_nll", "training", "-"), ("valid_nll", "validation", "-"),
                              ("smoothed_valid_nll", "validation (smoothed: the stopping metric)", "--"),
                              ("sample_valid_nll", "held-out samples (sample validation)", ":")):
        if var in ds:
            ax.plot(epochs, ds[var].values, style, label=label)
    ax.set_xlabel("epoch of the chosen model")
    ax.set_ylabel("reconstruction NLL per element")
    ax.set_title("Training curves")
    ax.legend(frameon=False)
    return _save(fig, folder, "training_curves.png")


def _pbt(ds, folder: Path) -> str | None:
    if "pbt_history" not in ds.attrs:
        return None
    import pandas as pd

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
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    chain = {(int(r["generation"]), int(r["member"])) for r in lineage}
    for ax, col in zip(axes.flat, ["metric"] + hps):
        for member, g in hist.groupby("member"):
            ax.plot(g["generation"], g[col], color="#bbbbbb", lw=0.8, marker=".", ms=3)
        if chain:
            on = hist[[(int(a), int(b)) in chain for a, b in zip(hist["generation"], hist["member"])]]
            on = on.sort_values("generation")
            ax.plot(on["generation"], on[col], color=COLORS[MODEL], lw=1.8, marker="o", ms=3,
                    label="the winner's lineage")
        if col != "metric":
            ax.set_yscale("log")
        ax.set_title("smoothed validation NLL" if col == "metric" else col)
        ax.set_xlabel("generation")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if chain:
        axes.flat[0].legend(frameon=False, fontsize=7)
    fig.suptitle("Population-based training: every member (grey) per generation; red: the winner's ancestry")
    return _save(fig, folder, "pbt_hyperparameters.png")


def _traces(ev: Evaluation, folder: Path, seconds: float = 10.0) -> str | None:
    tr = ev.traces
    times = tr["times"]
    if tr.get("rectified") is None:
        return None
    plt = _plt()
    mid = float(np.median(times))
    window = (times >= mid - seconds / 2) & (times < mid + seconds / 2)
    channels = ev.channel_names[:12]
    fig, axes = plt.subplots(len(channels), 1, figsize=(10, 1.4 * len(channels) + 1.0), sharex=True, squeeze=False)
    raw = tr.get("raw")
    for c, (ax, name) in enumerate(zip(axes[:, 0], channels)):
        top = float(np.nanquantile(tr["rectified"][window, c], 0.99)) or 1.0
        if raw is not None and raw[2]:  # raw EMG below zero, on its own scale
            t_raw, v_raw, _ = raw
            keep = (t_raw >= mid - seconds / 2) & (t_raw < mid + seconds / 2)
            r = v_raw[keep, c] - np.median(v_raw[keep, c])
            q = float(np.nanquantile(np.abs(r), 0.999)) or 1.0
            ax.plot(t_raw[keep], -0.55 * top + 0.45 * top * r / q, color=COLORS["raw"], lw=0.3,
                    label="raw EMG (below zero, own scale)")
        ax.plot(times[window], tr["rectified"][window, c], color=COLORS["rectified"], lw=0.6,
                label="rectified EMG (model bins)")
        for m in ("low-pass", "Bayesian", MODEL):
            if ("emg", m) in tr:
                lab, est = tr[("emg", m)]
                ax.plot(times[window], est[window, c], color=COLORS[m], lw=1.4 if m == MODEL else 0.9,
                        label=f"{m} ({lab})" if lab else m)
        ax.set_ylim(-1.05 * top if raw is not None and raw[2] else 0, 1.1 * top)
        ax.set_yticks([0.0, top], ["0", f"{top:.2g}"])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, frameon=False, fontsize=7)
    fig.suptitle(f"Example {seconds:g} s per muscle, in the source's units", y=0.99)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(folder / "traces.png")
    plt.close(fig)
    return "traces.png"


def _score_bars(ev: Evaluation, folder: Path) -> list[tuple[str, str]]:
    out = []
    plt = _plt()
    for metric, per_method in ev.scores.items():
        methods = [m for m in ev.methods if m in per_method]
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 2.2]})
        means = [per_method[m]["mean"] for m in methods]
        fold_means = [np.nanmean(np.asarray(per_method[m]["folds"], dtype=float), axis=1) for m in methods]
        colors = [COLORS.get(m.removeprefix("rates: "), "#777777") for m in methods]
        ax.bar(range(len(methods)), means, color=colors, yerr=[np.std(f) for f in fold_means], capsize=3)
        for i, f in enumerate(fold_means):
            ax.plot(np.full(f.size, i) + np.linspace(-0.15, 0.15, f.size), f, "k.", ms=3)
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
        ax.set_ylabel("r" if metric == "force" else "R²")
        lo = max(-0.5, min(0.0, min(np.nanmin(f) for f in fold_means)))
        ax.set_ylim(lo, 1.0)
        for i, v in enumerate(means):
            if v < lo:  # off the axis: say how far
                ax.text(i, lo, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_title("mean over targets; bar: SD over folds, dots: folds", fontsize=8)
        targets = per_method[methods[0]]["targets"]
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = per_method[m]["r"] if metric == "force" else per_method[m]["per_target"]
            ax2.bar(np.arange(len(targets)) + i * width, vals, width, color=colors[i], label=m)
        ax2.set_xticks(np.arange(len(targets)) + 0.4 - width / 2, targets, rotation=30, ha="right", fontsize=7)
        ax2.set_ylim(lo, 1.2)  # room above the bars for the legend
        ax2.set_yticks([t for t in ax2.get_yticks() if lo <= t <= 1.0])
        ax2.legend(frameon=False, fontsize=7, ncol=len(methods), loc="upper center")
        ax2.set_title("per target (pooled over folds)", fontsize=8)
        fig.suptitle(_title(metric, ev))
        out.append((metric, _save(fig, folder, f"scores_{metric}.png")))
    return out


def _spectra(ev: Evaluation, folder: Path) -> str | None:
    if not ev.spectra:
        return None
    plt = _plt()
    phases = list(ev.spectra)
    fig, axes = plt.subplots(2, len(phases), figsize=(3.6 * len(phases) + 1, 5.2), squeeze=False, sharex=True)
    for j, phase in enumerate(phases):
        for m, tf in ev.spectra[phase].items():
            axes[0, j].semilogy(tf["freq"], tf["gain"], color=COLORS.get(m, "#777"), label=m)
            axes[1, j].plot(tf["freq"], tf["coherence"], color=COLORS.get(m, "#777"), label=m)
        axes[0, j].set_title(f"{phase} ({next(iter(ev.spectra[phase].values()))['n_segments']} segments)",
                             fontsize=8)
        axes[1, j].set_xlabel("frequency (Hz)")
        axes[1, j].set_ylim(0, 1.02)
    axes[0, 0].set_ylabel("gain |P_xy / P_xx|\n(estimate per unit rectified EMG)")
    axes[1, 0].set_ylabel("coherence with\nrectified EMG")
    axes[0, 0].legend(frameon=False, fontsize=7)
    fig.suptitle("Effective filter from rectified EMG to each estimate (mean over muscles)")
    return _save(fig, folder, "transfer_functions.png")


def _factors(ds, folder: Path, seconds: float = 10.0) -> str | None:
    if "factors" not in ds:
        return None
    plt = _plt()
    times = ds.time.values
    mid = float(np.median(times))
    w = (times >= mid - seconds / 2) & (times < mid + seconds / 2)
    has_inputs = "inferred_inputs" in ds and ds.inferred_inputs.shape[1] > 0
    fig, axes = plt.subplots(2 if has_inputs else 1, 1, figsize=(10, 5 if has_inputs else 3), sharex=True,
                             squeeze=False)
    f = ds.factors.values[w]
    im = axes[0, 0].imshow(f.T, aspect="auto", interpolation="nearest", cmap="RdBu_r",
                           extent=[times[w][0], times[w][-1], f.shape[1] - 0.5, -0.5],
                           vmin=-np.nanmax(np.abs(f)), vmax=np.nanmax(np.abs(f)))
    axes[0, 0].set_ylabel("factor")
    fig.colorbar(im, ax=axes[0, 0], fraction=0.03)
    axes[0, 0].set_title("Latent factors (the generator's low-dimensional output)")
    if has_inputs:
        u = ds.inferred_inputs.values[w]
        for k in range(u.shape[1]):
            axes[1, 0].plot(times[w], u[:, k], lw=0.8, label=f"input {k}")
        axes[1, 0].set_title("Inferred inputs (the controller's output)")
        axes[1, 0].legend(frameon=False, fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    return _save(fig, folder, "factors.png")


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
            best = max(v["mean"] for v in ev.scores[m].values())
            spread = np.std(np.nanmean(np.asarray(s["folds"], dtype=float), axis=1))
            chosen = ""
            if s.get("chosen"):
                from collections import Counter

                chosen = f"<br><small>{html.escape(Counter(s['chosen']).most_common(1)[0][0])}</small>"
            bold = s["mean"] == best
            val = f"{s['mean']:.3f} ± {spread:.3f}"
            cells.append(f"<td>{'<b>' + val + '</b>' if bold else val}{chosen}</td>")
        rows.append(f"<tr><th>{html.escape(method)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


REPORT_FILES = ("index.html", "evaluation.json")
"""Files every report folder holds (with its PNG figures)."""


def is_report_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a report of :func:`write_report` (index.html, evaluation.json and
    figures, nothing else)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    names = [p.name for p in folder.iterdir()]
    return all((folder / f).is_file() for f in REPORT_FILES) and all(
        n in REPORT_FILES or n.endswith(".png") for n in names)


def check_report_folder(folder: str | Path, overwrite: bool = False) -> Path:
    """Fail early if ``folder`` cannot take a report: it must be missing, empty, a previous report
    (replaced whole) or, with ``overwrite``, any folder (replaced whole).

    Raises
    ------
    OutputError
        ``folder`` is a file, or a non-empty folder that is not a previous report (without ``overwrite``).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"report folder {str(folder)!r} is a file: give a folder for the report")
    if folder.is_dir() and any(folder.iterdir()) and not is_report_folder(folder) and not overwrite:
        raise OutputError(f"report folder {str(folder)!r} is not empty and holds no previous report: choose an empty "
                          "or new folder, or pass --overwrite to replace its contents")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"the folder {str(parent)!r} of the report does not exist: create it or choose another")
    return folder


def write_report(ev: Evaluation, folder: str | Path, ds=None, overwrite: bool = False) -> Path:
    """Write ``index.html``, the figures and ``evaluation.json`` into ``folder``.

    The report is written into a temporary folder beside it, which then replaces ``folder``
    whole: a previous report leaves no stale figures. ``ds``: the run
    (:func:`~nwb_autolfads.results.load_results`), read from ``ev.result`` if not given.
    Returns the path of ``index.html``.

    Raises
    ------
    OutputError
        ``folder`` is not empty and is not a previous report, and ``overwrite`` is False.
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
    from .results import load_results

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if ds is None:
        ds = load_results(ev.result, ev.run)
    ev.to_json(folder / "evaluation.json")
    figs = []
    for caption, name in (
            ("Example traces. Grey: rectified EMG in model bins; blue: the low-pass filter and green: the Bayesian "
             "filter, each at the parameters cross-validation chose most often; red: nwb-autolfads.",
             _traces(ev, folder)),):
        if name:
            figs.append((caption, name))
    for metric, name in _score_bars(ev, folder):
        figs.append((_title(metric, ev) + ". Higher is better. Folds are contiguous blocks of time; each "
                     "baseline's parameters were chosen inside the training folds.", name))
    for caption, name in (
            ("What each method does to the rectified EMG, as a filter: gain and coherence per frequency. A "
             "low-pass filter passes low frequencies with gain 1 and cuts above its cutoff; the model's filter "
             "adapts to the signal (per behavioural phase where the file has trials).", _spectra(ev, folder)),
            ("Training curves of the chosen model (negative log-likelihood per data element).",
             _training_curves(ds, folder)),
            ("Hyperparameters of every member of the population per generation.", _pbt(ds, folder)),
            ("Latent factors and inferred inputs over an example stretch.", _factors(ds, folder))):
        if name:
            figs.append((caption, name))
    provenance = {k: ds.attrs.get(k, "") for k in ("started", "finished", "software_version", "git_revision",
                                                    "random_seed", "source_file_identifier", "command")}
    hyper = ds.attrs.get("hyperparameters") or "{}"
    body = [f"<h1>nwb-autolfads evaluation: {html.escape(Path(ev.result).name)}, run {html.escape(ev.run)}</h1>",
            f"<p>{ev.n_bins} bins of {ev.bin_size * 1e3:g} ms; channels: {html.escape(', '.join(ev.channel_names))}."
            f" Scores are cross-validated over contiguous folds; ± is the SD over folds; the best per column is "
            f"bold; small text: the baseline parameters chosen most often.</p>",
            _table_html(ev)]
    if ev.notes:
        body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in ev.notes) + "</ul>")
    for caption, name in figs:
        body.append(f"<figure><img src='{name}' alt='{html.escape(name)}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")
    body.append("<h2>Provenance</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in provenance.items()) + "</table>")
    body.append(f"<h3>Hyperparameters of the result</h3><pre>{html.escape(json.dumps(json.loads(hyper), indent=1))}</pre>")
    body.append("<p>Numbers as JSON: <a href='evaluation.json'>evaluation.json</a></p>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>nwb-autolfads evaluation</title><style>"
            "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            "figure{margin:2em 0}img{max-width:100%}figcaption{color:#555;font-size:90%}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    index = folder / "index.html"
    index.write_text(page)
    return index
