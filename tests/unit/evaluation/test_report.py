"""The report's figures, checked as matplotlib objects (no browser): titles and labels inside
the figure, aligned panels, units on axes, the ground truth drawn, readable legends, counting
from 1 where the console does. Built from small hand-made evaluations: fast."""

import json
import re

import numpy as np
import pytest
import xarray as xr

from nwb_autolfads.evaluation.comparison import MODEL, Evaluation
from nwb_autolfads.evaluation import report

BIN = 0.01
N = 2000


def _scores(methods, targets, means, spread=0.01):
    out = {}
    for m, t, mu in zip(methods, targets, means):
        folds = np.full((5, len(t)), mu) + spread * np.linspace(-1, 1, 5)[:, None]
        out[m] = {"mean": mu, "per_target": np.full(len(t), mu), "r": np.full(len(t), mu), "folds": folds,
                  "targets": list(t), "chosen": ["4 Hz"] * 5 if m == "low-pass" else []}
    return out


def _evaluation(emg=True, units=0, truth=True, scores=True) -> Evaluation:
    rng = np.random.default_rng(0)
    times = np.arange(N) * BIN
    drive = 1 + np.sin(2 * np.pi * 0.5 * times)[:, None] * np.ones((1, 4))
    traces: dict = {"times": times, "rectified": None}
    methods, names = [], []
    if emg:
        rect = 1e-4 * drive * rng.gamma(4, 0.25, size=(N, 4))
        traces.update(rectified=rect, unit="volts",
                      raw=(np.arange(10 * N) * BIN / 10, 1e-4 * rng.normal(size=(10 * N, 4)), True))
        for m in ("low-pass", "Bayesian", MODEL):
            traces[("emg", m)] = ("4 Hz" if m == "low-pass" else "", 1e-4 * drive)
        if truth:
            traces[("emg", "truth")] = 0.3 * drive + 0.1  # no unit
        methods += [MODEL, "rectified", "low-pass", "Bayesian"]
        names = ["TA", "MG", "LG", "Sol"]
    if units:
        rates = 10 * (1 + np.sin(2 * np.pi * 0.5 * times)[:, None] * np.ones((1, units)))
        traces["unit_names"] = [f"unit {u}" for u in range(3, 3 + units)]
        traces["spikes"] = rng.poisson(rates * BIN).astype(float)
        traces[("spikes", MODEL)] = ("", rates)
        traces[("spikes", "smoothed spikes")] = ("40 ms", rates * 1.1)
        if truth:
            traces[("spikes", "truth")] = rates
        prefix = "rates: " if emg else ""
        methods += [prefix + MODEL, prefix + "smoothed spikes"]
        names = names or traces["unit_names"]
    sc = {}
    if scores and truth:
        n_emg = 4 if emg else 0  # the first methods estimate the muscles, the rest the units' rates
        targets = [names if k < n_emg else traces["unit_names"] for k in range(len(methods))]
        sc["truth"] = _scores(methods, targets, np.linspace(0.9, 0.5, len(methods)))
    return Evaluation(result="x.nwb", run="run_1", bin_size=BIN, n_bins=N, channel_names=names, methods=methods,
                      scores=sc, traces=traces)


def _run_dataset(pbt=True, inputs=1, factors=3, epochs=4) -> xr.Dataset:
    rng = np.random.default_rng(1)
    times = np.arange(N) * BIN
    ds = xr.Dataset({"factors": (("time", "factor"), rng.normal(size=(N, factors))),
                     "inferred_inputs": (("time", "inferred_input"), rng.normal(size=(N, inputs))),
                     "train_nll": (("epoch",), np.linspace(1, 0.5, epochs)),
                     "valid_nll": (("epoch",), np.linspace(1.1, 0.6, epochs)),
                     "smoothed_valid_nll": (("epoch",), np.linspace(1.1, 0.6, epochs))},
                    coords={"time": times, "epoch": np.arange(epochs)},
                    attrs={"bin_size": BIN, "run": "run_1", "hyperparameters": "{}", "metrics": "{}"})
    if pbt:
        rows = [{"generation": g, "member": k, "metric": 1.0 - 0.1 * g + 0.01 * k, "lr": 0.004 - 0.0001 * k * g,
                 "dropout": 0.1 + 0.2 * k, "cd_rate": 0.23 + 0.07 * k + 0.01 * g, "l2_gen_scale": 1e-3 * 10 ** k}
                for g in range(3) for k in range(2)]
        ds.attrs["pbt_history"] = json.dumps(rows)
        ds.attrs["metrics"] = json.dumps({"pbt": {"lineage": [{"generation": g, "member": 0} for g in range(3)]}})
    return ds


def _visible_texts(fig):
    """The texts a drawing of ``fig`` shows (tick labels only of the ticks inside the view, of
    axes that are on)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    tick_labels, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
            if ax.get_visible() and ax.axison:
                for tick in axis._update_ticks():  # the ticks a draw shows
                    drawn |= {id(tick.label1), id(tick.label2)}
    return [(t, t.get_window_extent(r)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and (id(t) in drawn or id(t) not in tick_labels)]


def assert_texts_inside(fig):
    """Every visible text lies inside the figure (nothing cut off at its edges)."""
    box = fig.bbox
    for t, bb in _visible_texts(fig):
        assert bb.x0 >= box.x0 - 1 and bb.x1 <= box.x1 + 1 and bb.y0 >= box.y0 - 1 and bb.y1 <= box.y1 + 1, \
            f"{t.get_text()!r} at {bb} outside the figure {box}"


def assert_legends_clear(fig):
    """No legend covers a title (the figure's or an axes')."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legends = [lg for ax in fig.axes for lg in [ax.get_legend()] if lg is not None] + list(fig.legends)
    titles = ([fig._suptitle] if fig._suptitle is not None else []) + [ax.title for ax in fig.axes if ax.title.get_text()]
    for lg in legends:
        lb = lg.get_window_extent(r)
        for t in titles:
            assert not lb.overlaps(t.get_window_extent(r)), f"legend covers the title {t.get_text()!r}"


def _ytick_labels(ax):
    lo, hi = sorted(ax.get_ylim())
    return [t.get_text() for t, v in zip(ax.get_yticklabels(), ax.get_yticks()) if lo <= v <= hi and t.get_text()]


# 12 ---------------------------------------------------------------------------------------
def test_transfer_functions_of_a_file_without_trials_fit_and_say_what_the_segments_are():
    ev = _evaluation()
    f = np.linspace(0, 50, 65)
    ev.spectra = {"all": {m: {"freq": f, "gain": np.exp(-f / 5), "coherence": np.exp(-f / 10), "n_segments": 46,
                              "nperseg": 128} for m in (MODEL, "low-pass", "Bayesian")}}
    fig = report.spectra_figure(ev)
    assert_texts_inside(fig)
    title = fig.axes[0].get_title()
    assert "whole recording" in title and "46 segments of 1.28 s" in title and "all" not in title


# 13 ---------------------------------------------------------------------------------------
def test_factors_and_inputs_share_the_time_axis_and_the_colour_bar_is_labelled():
    fig = report.factors_figure(_run_dataset(factors=3))
    heat = next(ax for ax in fig.axes if ax.get_ylabel() == "factor")
    inputs = next(ax for ax in fig.axes if "inferred input" in ax.get_ylabel())
    fig.canvas.draw()
    a, b = heat.get_position(), inputs.get_position()
    assert a.x0 == pytest.approx(b.x0, abs=1e-3) and a.width == pytest.approx(b.width, abs=1e-3)
    assert heat.get_xlim() == pytest.approx(inputs.get_xlim())
    cbar = [ax for ax in fig.axes if ax not in (heat, inputs) and ax.get_visible() and ax.axison]
    assert len(cbar) == 1 and "a.u." in cbar[0].get_ylabel()
    assert _ytick_labels(heat) == ["0", "1", "2"]
    assert "(a.u.)" in inputs.get_ylabel()
    assert_texts_inside(fig)


# 14 ---------------------------------------------------------------------------------------
def test_a_spike_run_gets_a_firing_rate_figure_with_the_unit_ids():
    ev = _evaluation(emg=False, units=5)
    assert report.traces_figure(ev) is None
    fig = report.rates_figure(ev)
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel().split("\n")[0] for ax in axes] == [f"unit {u}" for u in range(3, 8)]
    assert all("(Hz)" in ax.get_ylabel() for ax in axes)
    assert axes[0].collections, "the spikes are drawn as ticks"
    labels = [line.get_label() for line in axes[0].lines]
    assert MODEL in labels and "true rate" in labels
    assert_texts_inside(fig)
    assert_legends_clear(fig)


def test_the_intro_describes_only_what_the_report_shows(tmp_path):
    ev = _evaluation(emg=False, units=3, scores=False)
    page = report.write_report(ev, tmp_path / "r", ds=_run_dataset(pbt=False)).read_text()
    assert "rates.png" in page and "nothing to score against" in page
    assert "bold" not in page and "<table><tr><th>method" not in page
    assert "3 units: unit 3, unit 4, unit 5" in page
    scored = report.write_report(_evaluation(emg=False, units=3), tmp_path / "s", ds=_run_dataset(pbt=False))
    assert "bold" in scored.read_text() and "<b>" in scored.read_text()


# 15 ---------------------------------------------------------------------------------------
def test_traces_have_units_one_tick_format_the_ground_truth_and_a_legend_by_the_plot():
    fig = report.traces_figure(_evaluation())
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(axes) == 4 and all("(µV)" in ax.get_ylabel() for ax in axes)
    ticks = [t for ax in axes for t in _ytick_labels(ax)]
    assert ticks and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in ticks), ticks
    assert all(any("ground truth" in line.get_label() for line in ax.lines) for ax in axes)
    leg = axes[0].get_legend()
    assert leg is not None and all(t.get_fontsize() >= 8 for t in leg.get_texts())
    fig.canvas.draw()
    lb, ab = leg.get_window_extent(), axes[0].get_window_extent()
    assert 0 <= lb.y0 - ab.y1 < 40  # just above the first muscle, not far below the plot
    assert_texts_inside(fig)
    assert_legends_clear(fig)
    no_truth = report.traces_figure(_evaluation(truth=False))
    assert not any("ground truth" in line.get_label() for ax in no_truth.axes for line in ax.lines)


def test_scaled_unit_picks_an_si_prefix_for_volts_and_a_power_of_ten_otherwise():
    assert report.scaled_unit("volts", 1.8e-4) == (pytest.approx(1e6), "µV")
    assert report.scaled_unit("mV", 0.5) == (pytest.approx(1e3), "µV")
    assert report.scaled_unit("V", 2.0) == (pytest.approx(1.0), "V")
    assert report.scaled_unit("a.u.", 3e-4) == (pytest.approx(1e6), "a.u. ×1e-6")
    assert report.scaled_unit("a.u.", 5.0) == (1.0, "a.u.")


# 16 ---------------------------------------------------------------------------------------
def test_pbt_generations_count_from_one_and_narrow_ranges_are_not_log_cluttered():
    fig = report.pbt_figure(_run_dataset())
    panels = {ax.get_title().split(" (")[0]: ax for ax in fig.axes if ax.get_title()}
    for ax in panels.values():
        xs = np.concatenate([line.get_xdata() for line in ax.lines])
        assert xs.min() == 1 and xs.max() == 3
    cd = panels["cd_rate"]
    assert cd.get_yscale() == "linear" and 2 <= len(_ytick_labels(cd)) <= 6
    assert panels["l2_gen_scale"].get_yscale() == "log"  # a decade: log, with labels on decades only
    assert len(_ytick_labels(panels["l2_gen_scale"])) <= 4
    assert_texts_inside(fig)


def test_training_curves_have_whole_epoch_ticks_counted_from_one():
    fig = report.training_curves_figure(_run_dataset(epochs=4))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [v for v in ax.get_xticks() if lo <= v <= hi]
    assert ticks and all(float(v).is_integer() for v in ticks)
    assert min(np.concatenate([line.get_xdata() for line in ax.lines])) == 1


def test_scores_that_tie_to_three_decimals_are_told_apart_or_called_a_tie():
    ev = _evaluation()
    ev.scores = {"force": _scores(ev.methods, [["force"]] * 4, [0.9961, 0.9958, 0.9962, 0.9957], spread=0.002)}
    fig = report.scores_figure(ev, "force")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "1 − r" in ax.get_ylabel()
    heights = [p.get_height() for p in ax.patches]
    assert len(set(np.round(heights, 5))) == 4  # the bars differ
    assert "tie" in ax.get_title()
    assert_texts_inside(fig)
    table = report._table_html(ev)
    assert table.count("<b>") == 4  # all four shown as 0.996: all bold


def test_scores_of_muscles_and_units_are_drawn_side_by_side():
    ev = _evaluation(units=6)
    fig = report.scores_figure(ev, "truth")  # EMG methods: 4 muscles; rates: 6 units
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == ["TA", "MG", "LG", "Sol"] + [f"unit {u}" for u in range(3, 9)]
    assert "true firing rates" in fig._suptitle.get_text()
    assert_texts_inside(fig)
    assert_legends_clear(fig)


def test_report_screenshot_script_is_documented():
    from pathlib import Path

    script = Path(__file__).parents[3] / "benchmarks" / "report_screenshot.py"
    text = script.read_text()
    assert "--headless" in text and "--screenshot" in text
    assert "report_screenshot.py" in (script.parent / "README.md").read_text()


def test_the_models_credible_interval_is_a_shaded_band_around_its_trace_named_in_legend_and_caption(tmp_path):
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb

    ev = _evaluation(units=3)
    for kind in ("emg", "spikes"):
        est = ev.traces[(kind, MODEL)][1]
        ev.traces[(kind, "band")] = (0.9, 0.8 * est, 1.25 * est)
    for fig in (report.traces_figure(ev), report.rates_figure(ev)):
        axes = [ax for ax in fig.axes if ax.get_ylabel()]
        for ax in axes:
            bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
            assert len(bands) == 1 and bands[0].get_label() == f"{MODEL}: 90% credible interval"
            model_line = next(line for line in ax.lines if line.get_label() == MODEL)
            assert tuple(bands[0].get_facecolor()[0][:3]) == pytest.approx(to_rgb(model_line.get_color()))
        assert any("90% credible interval" in t.get_text() for t in axes[0].get_legend().get_texts())
        assert_texts_inside(fig)
        assert_legends_clear(fig)
    calibrated = _run_dataset(pbt=False)
    calibrated.attrs["metrics"] = json.dumps({"interval_calibration": {"method": "test", "z": 1.645}})
    page = report.write_report(ev, tmp_path / "r", ds=calibrated).read_text()
    assert page.count("Red shading: its central 90% credible interval") == 2
    assert page.count("samples, widened by the model") == 2
    # a run before the band was calibrated (no interval_calibration: the 0.3.0 fixture) is not said to be widened
    older = report.write_report(ev, tmp_path / "o", ds=_run_dataset(pbt=False)).read_text()
    assert older.count("credible interval (posterior-sample quantiles; approximate)") == 2 and "widened" not in older
    plain = report.write_report(_evaluation(units=3), tmp_path / "p", ds=_run_dataset(pbt=False)).read_text()
    assert "credible interval" not in plain
    assert not [c for ax in report.traces_figure(_evaluation()).axes for c in ax.collections
                if isinstance(c, PolyCollection)]


def test_without_matplotlib_the_report_asks_for_the_report_extra(tmp_path, monkeypatch, capsys):
    """matplotlib is only in the `report` extra: without it, write_report and `--report` (of evaluate
    and of run, before any reading or training) stop with one line naming the extra."""
    from nwb_autolfads.cli import main
    from nwb_autolfads.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # `import matplotlib` fails
    with pytest.raises(MissingDependencyError, match=re.escape('pip install "nwb-autolfads[report]"')):
        report.write_report(_evaluation(), tmp_path / "r")
    for argv in (["evaluate", str(tmp_path / "missing.nwb"), "--report", str(tmp_path / "r")],
                 ["run", str(tmp_path / "missing.nwb"), "--report", str(tmp_path / "r")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and 'nwb-autolfads[report]' in err and "missing.nwb" not in err
    assert not (tmp_path / "r").exists()
