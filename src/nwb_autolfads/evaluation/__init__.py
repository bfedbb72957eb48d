"""How good a result is: the model against low-pass and Bayesian filtering of the same EMG
(:mod:`.comparison`), the baselines, metrics, the credible band's calibration and the HTML report.

May import: numpy, scipy, scikit-learn (the ridge decoders of :mod:`.metrics`), tqdm (progress), matplotlib (only
:mod:`.report`) and :mod:`nwb_autolfads.errors`, :mod:`~nwb_autolfads.config`,
:mod:`~nwb_autolfads.data`, :mod:`~nwb_autolfads.io`. Never torch.
"""
