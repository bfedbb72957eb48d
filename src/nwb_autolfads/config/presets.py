"""The named presets: the values each one sets over the defaults of the sections."""

from __future__ import annotations

from typing import Any

from nwb_autolfads.config.mappings import deep_merge

__all__ = ["PRESETS", "EMG_ONLY", "preset_values"]

# Budgets are optimisation steps (batches), so a preset costs about the same on any recording length
# (an epoch is ceil(training windows / batch_size) steps: a minute of EMG in 10 ms bins chops into
# ~150 windows of 50 bins, ~120 of them for training). Times below: one 12-muscle EMG model on a
# 2-core laptop CPU at ~35 ms per step (batch 16) or ~50 ms (batch 32) without other load; measured
# here under heavy load with one torch thread: 109 and 178 ms per step. GPU: not measured.
PRESETS: dict[str, dict[str, Any]] = {
    # A pipeline check (tests, a first look at a file): a tiny model, 2 members x 2 generations x
    # 10 steps. Its results are not meant to be used. Seconds of training on any recording.
    "smoke": {
        "model": {"ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 1, "ic_dim": 8,
                  "gen_dim": 16, "factor_dim": 3},
        "train": {"max_steps": 20, "min_steps": 0, "ramp_steps": 5, "batch_size": 16, "valid_every": 5},
        "pbt": {"population": 2, "generation_steps": 10, "max_generations": 2, "workers": 1},
        "windows": {"window_bins": 20, "overlap_bins": 4},
        "inference": {"mode": "mean"},
    },
    # One model, at most 2000 steps of 16 windows (the epoch budget before was 150 epochs = 1200 steps on
    # a minute of 12-muscle EMG, and grew with the recording: 12000 steps for 10 minutes). Measured on
    # that minute (benchmarks/synthetic_emg_quality.py, seed 0): early stopping ends at ~800 steps with
    # the same quality as the epoch budget (r with the truth 0.984 both; decoding R^2 0.960 vs 0.954).
    # Expected: ~30 s of training on 2 cores (at most ~75 s at 2000 steps), for any recording length.
    "quick": {
        "model": {"ic_enc_dim": 32, "ci_enc_dim": 32, "con_dim": 32, "co_dim": 2, "ic_dim": 32,
                  "gen_dim": 64},
        "train": {"max_steps": 2000, "min_steps": 300, "ramp_steps": 300, "early_stopping_patience": 300,
                  "batch_size": 16, "valid_every": 10},
        "pbt": {"population": 1},
        "inference": {"mode": "sample", "n_samples": 20},
    },
    # AutoLFADS: a population of 20 tuned by PBT in generations of 100 steps of 32 windows (what 25
    # epochs were on a minute of EMG: the same budget there, so its quality there is unchanged; not
    # re-measured), the stopping rule, at most 40 generations = at most 80000 member-steps.
    # Measured on an hour of 16-muscle EMG, 2 idle cores: 46 min of training (the stopping rule ended
    # it at 36 generations of 77 s), 48 min the whole run, 1.6 GB peak; at most ~52 min of training
    # for 40 generations at any recording length (benchmarks/README.md, scale); a busy machine can
    # take about twice as long. The run prints its own estimate, timed on the data, before training.
    "default": {},
    # The published AutoLFADS settings (Keshtkaran et al. 2022, Wimalasena et al. 2022): as the
    # default preset with 100 generations at most (at most 200000 member-steps: at most ~2.1 h of training on 2 idle cores).
    "paper": {"pbt": {"population": 20, "max_generations": 100}},
}

# Values a preset sets over its own when EMG is the only modality modelled (``data.modalities:
# [emg]``, the default); a config file and overrides still win over them.
#
# quick (issue 15, benchmarks/README.md "Synthetic EMG family"): 6 inferred inputs with a prior
# variance of 1, a controller KL weight of 1e-6, no dropout and at least 8 factors. With the quick
# values above (2 inputs, prior variance 0.1, KL weight 1e-4, dropout 0.1, the factor rule's 3-4
# factors for 4-6 muscles) the model could not follow the within-window variation of EMG whose
# activations are not low-dimensional: on a scratch 5-muscle drift it fitted its training windows no
# better than its validation windows, no better without coordinated dropout, at a Gamma NLL 0.39
# nats per bin worse than a 4 Hz low-pass of the same EMG (R^2 vs truth 0.925 -> 0.962 with these).
# Held-out family: 8 -> 10 of 16 wins, median margin -0.012 -> +0.003. On spikes the same values
# made the quick preset much worse (chaotic RNN R^2 0.786 -> 0.624, Lorenz 0.736 -> 0.285: no
# dropout lets the Poisson model overfit), so they are EMG-only.
EMG_ONLY: dict[str, dict[str, Any]] = {
    "quick": {
        "model": {"co_dim": 6, "co_prior_var": 1.0, "dropout": 0.0, "min_factors": 8},
        "train": {"kl_co_scale": 1e-6},
    },
}


def preset_values(preset: str, modalities: tuple[str, ...]) -> dict[str, Any]:
    """The values ``preset`` sets (section -> key -> value) for a run of ``modalities``:
    :data:`PRESETS` ``[preset]``, with :data:`EMG_ONLY` ``[preset]`` over it when EMG is the only
    modality. ``preset`` must be a key of :data:`PRESETS`; returns a new mapping."""
    values = deep_merge({}, PRESETS[preset])
    if tuple(modalities) == ("emg",) and preset in EMG_ONLY:
        values = deep_merge(values, EMG_ONLY[preset])
    return values
