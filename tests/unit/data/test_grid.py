"""The bin grid after binning (nwb_autolfads.data.grid)."""
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
