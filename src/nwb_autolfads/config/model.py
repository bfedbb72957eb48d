"""The sections of the model: ``model`` (LFADS architecture and observation model) and ``augment``
(training-time augmentations)."""

from __future__ import annotations

from dataclasses import dataclass

from nwb_autolfads.config.checks import check
from nwb_autolfads.model.registry import observation_names, observation_spec

__all__ = ["ModelConfig", "AugmentConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """LFADS architecture (docs/science.md, LFADS)."""

    observation: str = "gamma"
    """Likelihood of the EMG: ``gamma``, or ``zigamma`` (zero-inflated Gamma) for EMG with exact zeros
    (any observation model registered for non-negative data, :mod:`nwb_autolfads.model.registry`)."""
    ic_enc_dim: int = 64
    """Units of the initial-condition encoder GRU (per direction)."""
    ci_enc_dim: int = 64
    """Units of the controller-input encoder GRU (per direction)."""
    con_dim: int = 64
    """Units of the controller GRU."""
    co_dim: int = 2
    """Number of inferred inputs; 0 removes the controller."""
    ic_dim: int = 64
    """Dimension of the initial condition of the generator."""
    gen_dim: int = 64
    """Units of the generator GRU."""
    factor_dim: int | None = None
    """Number of factors; ``None`` = inferred from the number of channels: round(0.75 x channels),
    at least ``min_factors`` and at most 40."""
    min_factors: int = 2
    """The fewest factors the automatic rule (``factor_dim: null``) gives. The quick preset sets 8 for
    EMG alone: with 4-6 muscles the rule's 3-4 factors were too few to follow the activations (issue
    15, benchmarks/README.md "Synthetic EMG family"); more factors than channels is allowed."""
    readin_dim: int = 0
    """Multi-session models only (several recordings, one model): the size R of the shared input that
    each session's linear read-in maps its channels to (the encoders read R values per bin); 0 = the
    median of the sessions' channel counts, rounded half up (docs/science.md, Multi-session models).
    Ignored for one session."""
    readin_init: str = "random"
    """Multi-session models only: how each session's read-in starts. ``random`` (uniform within +-1 /
    sqrt(channels), as a linear layer starts; the default) or ``pca`` (the session's top R principal
    axes). Measured (benchmarks/README.md, Many sessions): the PCA start let the model fit noise -
    its validation NLL rose after ~300 steps while a random start kept improving - so random is the
    default. Ignored for one session."""
    dropout: float = 0.1
    """Dropout rate (data into the encoders, encoder outputs, generator states)."""
    cell_clip: float = 5.0
    """Bound on the GRU hidden states (numerical safety)."""
    ci_lag: int = 1
    """Bins by which the controller inputs lag the data (so the controller cannot copy it)."""
    lead_in_bins: int = 0
    """Bins before each window that only the initial-condition encoder sees (e.g. 12)."""
    ic_prior_var: float = 0.1
    """Variance of the Gaussian prior of the initial condition."""
    ic_post_var_min: float = 1e-4
    """Smallest variance of the initial condition's posterior."""
    co_prior_tau: float = 10.0
    """Autocorrelation time constant (bins) of the AR(1) prior of the inferred inputs."""
    co_prior_var: float = 0.1
    """Variance of the AR(1) prior of the inferred inputs."""

    def __post_init__(self) -> None:
        choices = observation_names("nonnegative")
        check(self.observation in choices, "model.observation", self.observation,
              "use one of " + "; ".join(f"{n!r} ({observation_spec(n).doc})" for n in choices))
        for name in ("ic_enc_dim", "ic_dim", "gen_dim"):
            check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "use an integer >= 1")
        check(self.co_dim >= 0, "model.co_dim", self.co_dim, "use an integer >= 0 (0 removes the controller)")
        if self.co_dim > 0:
            for name in ("ci_enc_dim", "con_dim"):
                check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name),
                      "use an integer >= 1 (or set co_dim: 0)")
        if self.factor_dim is not None:
            check(self.factor_dim >= 1, "model.factor_dim", self.factor_dim, "use an integer >= 1, or null (auto)")
        check(1 <= self.min_factors <= 40, "model.min_factors", self.min_factors, "use an integer in 1..40")
        check(self.readin_dim >= 0, "model.readin_dim", self.readin_dim,
              "use an integer >= 1, or 0 (auto: the median of the sessions' channel counts)")
        check(self.readin_init in ("random", "pca"), "model.readin_init", self.readin_init,
              "use 'random' or 'pca'")
        check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "use a rate in [0, 1)")
        check(self.cell_clip > 0, "model.cell_clip", self.cell_clip, "use a positive bound, e.g. 5")
        check(self.ci_lag >= 0, "model.ci_lag", self.ci_lag, "use an integer >= 0")
        check(self.lead_in_bins >= 0, "model.lead_in_bins", self.lead_in_bins, "use an integer >= 0")
        for name in ("ic_prior_var", "ic_post_var_min", "co_prior_tau", "co_prior_var"):
            check(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "use a positive value")

    def factors_for(self, n_channels: int) -> int:
        """Number of factors for ``n_channels`` channels (explicit value or the EMG rule)."""
        if self.factor_dim is not None:
            return self.factor_dim
        # Fewer factors than channels for EMG (e.g. 8-10 for 12 muscles), at least min_factors.
        return max(self.min_factors, min(40, int(round(0.75 * n_channels))))

    def readin_for(self, session_channels: tuple[int, ...]) -> int:
        """The shared input size R of a multi-session model whose sessions have ``session_channels``
        channels: ``readin_dim``, or (0) their median, rounded half up, at least 1."""
        if self.readin_dim > 0:
            return self.readin_dim
        ordered = sorted(int(c) for c in session_channels)
        n = len(ordered)
        middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        return max(1, int(middle + 0.5))


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentations (docs/science.md, Augmentations)."""

    cd_rate: float = 0.3
    """Coordinated dropout: fraction of input elements masked; 0 disables."""
    shift_std: float = 1.0
    """Temporal shift: standard deviation (bins) of per-channel shifts; 0 disables."""
    shift_max: int = 3
    """Largest per-channel temporal shift in bins."""
    sv_rate: float = 0.0
    """Sample validation: fraction of training data elements never shown to the encoder nor used in
    the loss; their NLL is a second validation metric (``sample_valid_nll``). 0 disables."""

    def __post_init__(self) -> None:
        check(0.0 <= self.cd_rate < 1.0, "augment.cd_rate", self.cd_rate, "use a rate in [0, 1)")
        check(0.0 <= self.sv_rate < 0.5, "augment.sv_rate", self.sv_rate, "use a fraction in [0, 0.5), e.g. 0.1")
        check(self.shift_std >= 0, "augment.shift_std", self.shift_std, "use a value >= 0 (bins)")
        check(self.shift_max >= 0, "augment.shift_max", self.shift_max, "use an integer >= 0 (bins)")
