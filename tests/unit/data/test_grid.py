"""The bin grid after binning (nwb_autolfads.data.grid)."""
import numpy as np

from nwb_autolfads.config import build_config
from nwb_autolfads.data.grid import fit_windows


def test_fit_windows_respects_fit_segments():
    cfg = build_config("default")
    fitted = fit_windows(cfg, [45] * 10, 0.01)
    assert (fitted.windows.window_bins, fitted.windows.overlap_bins) == (45, 9)
    assert fit_windows(cfg, [120] * 10, 0.01) is cfg
    kept = cfg.updated({"windows.fit_segments": False})
    assert fit_windows(kept, [45] * 10, 0.01) is kept
    lead = cfg.updated({"model.lead_in_bins": 5})
    assert fit_windows(lead, [45] * 10, 0.01).windows.window_bins == 40  # lead-in + window = one segment


def test_skipped_trials_are_named_by_row_and_time(caplog):
    """A tester's report: "3 of 40 trials ... skipped" did not say which."""
    from nwb_autolfads.data.grid import trial_windows

    bin_size = 0.01
    centres = [0.005 + bin_size * np.arange(1000)]  # 10 s of bins
    values = [np.arange(1000, dtype=float)[:, None]]
    align = np.array([1.0, np.nan, 9.95, 3.0, -2.0, 5.0])  # row 1: no time; rows 2 and 4: outside
    with caplog.at_level("WARNING"):
        times, cut = trial_windows(align, 0.0, 20, 0, bin_size, centres, values)
    assert len(times) == 3 and [round(float(t[0]), 3) for t in times] == [1.005, 3.005, 5.005]
    text = caplog.text
    assert "3 of 6 trials skipped" in text
    assert "2 whose window is not fully inside the data or spans a gap (row 4 at -2 s, row 2 at 9.95 s)" in text
    assert "1 with no alignment time (row 1)" in text
