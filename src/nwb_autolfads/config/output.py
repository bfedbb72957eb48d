"""The sections of what a run produces: ``inference`` (how estimates and their credible intervals
are inferred from the trained model) and ``output`` (what a new output file holds)."""

from __future__ import annotations

from dataclasses import dataclass

from nwb_autolfads.config.checks import check

__all__ = ["InferenceConfig", "OutputConfig"]


@dataclass(frozen=True)
class InferenceConfig:
    """How outputs are inferred from the trained model (docs/science.md, Inference)."""

    mode: str = "sample"
    """``mean``: one pass with posterior means; ``sample``: average over posterior samples."""
    n_samples: int = 50
    """Posterior samples averaged per window with ``mode: sample``."""
    batch_size: int = 256
    """Windows x samples evaluated at once on the CPU (bounds memory; larger batches are not
    faster there)."""
    gpu_batch_size: int = 4096
    """The same on a GPU, where a pass is launch-bound and larger batches are faster."""
    interval: float | None = 0.9
    """Probability of the approximate central credible interval written with the estimates in
    ``mode: sample`` (``lower`` / ``upper`` per bin and channel); ``null``: none. The band starts
    from the (1 - interval) / 2 and (1 + interval) / 2 quantiles of the posterior samples, which
    spread the latent states only (far too narrow alone: a 90% band of them held 2-28% of the true
    activation, median 18%, on the synthetic EMG family), and is widened by the model's own error, estimated per channel and level
    of the estimate from the residual beyond the observation noise and the noise it follows (a residual-variance
    decomposition; :mod:`nwb_autolfads.evaluation.calibration`; the estimates are in the run's metrics,
    ``interval_calibration``): half-widths sqrt(posterior^2 + (z x error)^2), the lower bound >= 0.
    The noise the model follows is measured with noise probes through the model and counted as
    error; noise correlated over bins that it follows (smooth artefacts, enveloped input) is not,
    so the band is then too narrow. ``mode: mean`` (and ``n_samples: 1``) has no samples and writes
    none."""

    def __post_init__(self) -> None:
        check(self.mode in ("mean", "sample"), "inference.mode", self.mode, "use 'mean' or 'sample'")
        check(self.n_samples >= 1, "inference.n_samples", self.n_samples, "use an integer >= 1")
        check(self.batch_size >= 1, "inference.batch_size", self.batch_size, "use an integer >= 1")
        check(self.gpu_batch_size >= 1, "inference.gpu_batch_size", self.gpu_batch_size, "use an integer >= 1")
        check(self.interval is None or 0.0 < self.interval < 1.0, "inference.interval", self.interval,
              "use a probability between 0 and 1 (0.9: the central 90% credible interval), or null for none")

    @property
    def with_interval(self) -> bool:
        """Whether inference gives a credible interval: posterior samples (``mode: sample``, at
        least 2) and an ``interval``."""
        return self.mode == "sample" and self.n_samples >= 2 and self.interval is not None


@dataclass(frozen=True)
class OutputConfig:
    """What a new output file holds (``--in-place`` adds the run to the input itself, whatever this says)."""

    content: str | None = None
    """``results``: the run's results plus what identifies the source (location, DANDI asset,
    identifier, object ids), not the source's data: small, and ``evaluate`` reads the source
    again when it needs its signals. ``full``: a copy of the source's content plus the run.
    ``None``: ``results`` for remote inputs (URL or DANDI asset: nothing is downloaded whole),
    ``full`` for local files."""
    save_model: bool = True
    """Whether a run that writes a file also keeps its trained model beside it, as the folder
    ``<output stem>.autolfads-model`` (weights in safetensors, ``model.json``; replaced only with
    ``--overwrite``), for ``nwb-autolfads apply``. A run added to a file that holds other runs
    (``--in-place``, or a full copy of a source that has runs) keeps its own model, named after the
    run: ``<stem>.<run name>.autolfads-model``. A run that writes no file keeps none unless
    asked (``run(..., save_model=PATH)``)."""

    def __post_init__(self) -> None:
        check(isinstance(self.save_model, bool), "output.save_model", self.save_model, "use true or false")
        check(self.content in (None, "results", "full"), "output.content", self.content,
              "use 'results' (the results and a reference to the source), 'full' (a copy of the source "
              "plus the results) or null (results for remote inputs, full for local files)")
