"""Build the ndx-autolfads namespace and write its YAML next to this script.

    python spec/build_spec.py

Run it after changing a type, commit the YAML it writes (``ndx-autolfads.namespace.yaml``,
``ndx-autolfads.extensions.yaml``) and bump ``VERSION`` when the change is not backwards
compatible. The tests check the YAML against this script and against pynwb's meta-schema.
"""

from __future__ import annotations

from pathlib import Path

from pynwb.spec import (NWBAttributeSpec, NWBDatasetSpec, NWBGroupSpec, NWBLinkSpec, NWBNamespaceBuilder,
                        export_spec)

NAME = "ndx-autolfads"
VERSION = "0.7.0"


def _text(name: str, doc: str, required: bool = True) -> NWBAttributeSpec:
    return NWBAttributeSpec(name=name, doc=doc, dtype="text", required=required)


def _json(name: str, doc: str, quantity="?") -> NWBDatasetSpec:
    return NWBDatasetSpec(name=name, doc=f"{doc} (JSON text)", dtype="text", quantity=quantity)


def _bounds(dims: list[str], what: str) -> list[NWBDatasetSpec]:
    """The optional ``lower`` / ``upper`` bounds of a credible interval of ``data`` (since 0.3.0)."""
    return [NWBDatasetSpec(name=name, doc=f"{side} bound of the central credible interval (probability: the "
                           f"credible_interval attribute) of {what} per bin, in the data's units: the {q} quantile over the "
                           "posterior samples, merged across overlapping windows with the means' weights (an "
                           "approximation there). Absent when inference used no samples.", dtype="float32",
                           shape=[[None, None]], dims=[dims], quantity="?")
            for name, side, q in (("lower", "Lower", "(1 - credible_interval) / 2"),
                                  ("upper", "Upper", "(1 + credible_interval) / 2"))]


def _interval() -> NWBAttributeSpec:
    # not "interval": TimeSeries.timestamps has an attribute of that name, which the object mapper would take
    return NWBAttributeSpec(name="credible_interval", dtype="float64", required=False,
                            doc="Probability of the credible interval that lower and upper bound (e.g. 0.9). "
                                "Absent with them.")


def build_types() -> list[NWBGroupSpec]:
    muscle_activations = NWBGroupSpec(
        neurodata_type_def="MuscleActivations",
        neurodata_type_inc="TimeSeries",
        doc="AutoLFADS estimate of muscle activation: the expected rectified EMG per bin under the trained model, "
            "in the source series' units and channel order, on the model's bin centres.",
        datasets=[
            NWBDatasetSpec(name="data", doc="Activation per bin and muscle.", dtype="float32",
                           shape=[[None, None]], dims=[["num_times", "num_channels"]]),
            NWBDatasetSpec(name="channel_names", doc="Muscle (channel) names, in the order of the data's columns.",
                           dtype="text", shape=[None], dims=["num_channels"]),
            NWBDatasetSpec(name="scales", doc="Per-channel scale applied before modelling (the data were divided by "
                           "it, and the estimate multiplied back), in the source's units.",
                           dtype="float64", shape=[None], dims=["num_channels"], quantity="?"),
            *_bounds(["num_times", "num_channels"], "the activation"),
        ],
        attributes=[_interval()],
    )
    firing_rates = NWBGroupSpec(
        neurodata_type_def="FiringRates",
        neurodata_type_inc="TimeSeries",
        doc="AutoLFADS estimate of firing rates (Poisson observation model), in Hz, on the model's bin centres.",
        datasets=[
            NWBDatasetSpec(name="data", doc="Firing rate per bin and unit, in Hz.", dtype="float32",
                           shape=[[None, None]], dims=[["num_times", "num_units"]]),
            NWBDatasetSpec(name="units", neurodata_type_inc="DynamicTableRegion",
                           doc="Rows of this file's Units table modelled, in the order of the data's columns. "
                               "Absent when the Units table is not in this file (a results-only file): see "
                               "unit_ids.", dtype="int", shape=[None], dims=["num_units"], quantity="?"),
            NWBDatasetSpec(name="unit_ids", doc="Ids of the modelled units (the id column of the source's Units "
                           "table), in the order of the data's columns.", dtype="int64", shape=[None],
                           dims=["num_units"], quantity="?"),
            *_bounds(["num_times", "num_units"], "the firing rate"),
        ],
        attributes=[_interval()],
    )
    continuous = NWBGroupSpec(
        neurodata_type_def="ContinuousEstimate",
        neurodata_type_inc="TimeSeries",
        doc="AutoLFADS estimate of a continuous signal modelled with the others (since 0.4.0; e.g. force, Gaussian "
            "observation model): the posterior estimate of the signal per bin, in the source series' units and "
            "channel order, on the model's bin centres.",
        datasets=[
            NWBDatasetSpec(name="data", doc="Estimate per bin and channel, in the source's units.", dtype="float32",
                           shape=[[None, None]], dims=[["num_times", "num_channels"]]),
            NWBDatasetSpec(name="channel_names", doc="Channel names, in the order of the data's columns.",
                           dtype="text", shape=[None], dims=["num_channels"]),
            NWBDatasetSpec(name="offsets", doc="Per-channel offset subtracted before modelling, in the source's "
                           "units (the model saw (x - offsets) / scales; the estimate is converted back).",
                           dtype="float64", shape=[None], dims=["num_channels"], quantity="?"),
            NWBDatasetSpec(name="scales", doc="Per-channel scale the data were divided by before modelling, in the "
                           "source's units.", dtype="float64", shape=[None], dims=["num_channels"], quantity="?"),
            *_bounds(["num_times", "num_channels"], "the estimate"),
        ],
        attributes=[_interval(),
                    _text("modality", "The modality modelled (an entry of data.modalities, e.g. force).",
                          required=False)],
    )
    run = NWBGroupSpec(
        neurodata_type_def="AutoLFADSRun",
        neurodata_type_inc="NWBDataInterface",
        doc="One nwb-autolfads run: its estimates (denoised signals, latent factors, inferred inputs, initial "
            "conditions), links to the source series, and the provenance needed to reproduce it.",
        attributes=[
            _text("description", "What was modelled, in words."),
            _text("software_version", "nwb-autolfads version that made this run."),
            _text("git_revision", "Git revision of nwb-autolfads, if it ran from a checkout.", required=False),
            NWBAttributeSpec(name="random_seed", doc="Random seed of the run.", dtype="int"),
            _text("started", "Start time, ISO 8601 with time zone."),
            _text("finished", "End time, ISO 8601 with time zone."),
            _text("source_file_identifier", "Identifier of the NWB file the run read."),
            _text("source_file_sha256", "SHA-256 of the NWB file the run read, as read."),
            _text("source_paths", "Object paths of the modelled series in the source file, comma-separated."),
            _text("source_object_ids", "Object ids of the modelled series, comma-separated, in the same order."),
            _text("source_location", "Where the source file was read: its absolute local path, or the URL "
                  "given (http(s), or a DANDI URL naming dandiset, version and asset path).", required=False),
            _text("source_url", "The http(s) URL a remote source was streamed from (for a DANDI asset, its "
                  "content URL).", required=False),
            _text("source_dandi_asset_id", "DANDI asset id of the source, for a DANDI input.", required=False),
            NWBAttributeSpec(name="source_in_file", dtype="bool", required=False,
                             doc="Whether the source's data are in this file. False for a results-only file: "
                                 "the source signals are read from source_url or source_location. Absent "
                                 "(files written before version 0.2.0): true."),
            _text("modalities", "Modelled modalities, joined by '+', e.g. emg, spikes, emg+spikes or emg+force."),
            NWBAttributeSpec(name="bin_size", doc="Width of the model's time bins, in seconds.", dtype="float64"),
            _text("model_location", "Since 0.5.0: absolute path of the trained model's folder (*.autolfads-model: "
                  "model.safetensors and model.json) that this run saved beside its output, or for an applied "
                  "run (model_applied) the model it applied. Absent when no model was kept.", required=False),
            _text("model_sha256", "Since 0.5.0: SHA-256 of that folder's model.safetensors (the weights). Absent "
                  "with model_location.", required=False),
            NWBAttributeSpec(name="model_applied", dtype="bool", required=False,
                             doc="Since 0.5.0: true when this run applied a model trained by another run "
                                 "(nwb-autolfads apply: nothing was trained, training_curves and pbt_history are "
                                 "absent); false or absent when the run trained its model."),
        ],
        datasets=[
            _json("config", "The fully resolved configuration", quantity=1),
            _json("software", "Versions of nwb-autolfads, Python, torch, pynwb, hdmf, numpy, scipy, h5py", quantity=1),
            _json("preprocessing", "Preprocessing steps and parameters, per-channel scales and clip levels"),
            _json("hyperparameters", "The chosen hyperparameters (the best member's, for population-based training)",
                  quantity=1),
            _json("metrics", "Final metrics (training and validation NLL, epochs, windows)", quantity=1),
            NWBDatasetSpec(name="command", doc="The command line or API call.", dtype="text", quantity="?"),
            _json("source", "Where the input came from: as given, local path or URL, format (NWB HDF5 or NWB "
                  "Zarr), SHA-256 and what it covers; for DANDI assets the instance, dandiset id, version and how "
                  "it was chosen, asset path, asset id, size and the digests the archive publishes"),
            _json("sessions", "Since 0.6.0, for a model trained over several sessions (nwb-autolfads run --multi-"
                  "session): 'this', the index of this file's session, and 'sessions', one entry per session of "
                  "the model in its order: name, NWB identifier, location, URL, DANDI asset id, SHA-256, output "
                  "file and its channel blocks (names, scales). Absent for a model of one session"),
        ],
        groups=[
            NWBGroupSpec(name="emg_activations", neurodata_type_inc="MuscleActivations", quantity="?",
                         doc="Estimated muscle activations."),
            NWBGroupSpec(name="firing_rates", neurodata_type_inc="FiringRates", quantity="?",
                         doc="Estimated firing rates."),
            NWBGroupSpec(neurodata_type_inc="ContinuousEstimate", quantity="*",
                         doc="Estimated continuous signals modelled with the others (since 0.4.0), e.g. "
                             "inferred_force."),
            NWBGroupSpec(name="factors", neurodata_type_inc="TimeSeries",
                         doc="Latent factors shared by the modelled signals, per bin."),
            NWBGroupSpec(name="inferred_inputs", neurodata_type_inc="TimeSeries", quantity="?",
                         doc="Inferred inputs to the generator (controller outputs), per bin."),
            NWBGroupSpec(name="initial_conditions", neurodata_type_inc="TimeSeries", quantity="?",
                         doc="Posterior mean of the initial condition of each window, timestamped at the "
                             "window's first modelled bin. Written up to 0.6.0; since 0.7.0 "
                             "window_initial_conditions instead (a TimeSeries of fewer windows than initial-"
                             "condition dimensions reads as transposed to nwbinspector, a CRITICAL finding that "
                             "dandi validate counts as an error)."),
            NWBGroupSpec(name="window_initial_conditions", neurodata_type_inc="DynamicTable", quantity="?",
                         doc="Since 0.7.0: one row per window, in window order: time (float64, seconds: the "
                             "window's first modelled bin) and initial_condition (float32, windows x dimensions: "
                             "the posterior mean of the window's initial condition)."),
            NWBGroupSpec(name="training_curves", neurodata_type_inc="DynamicTable", quantity="?",
                         doc="One row per training epoch of the chosen model: losses, learning rate. Absent (since "
                             "0.5.0) in a run that applied a saved model (model_applied)."),
            NWBGroupSpec(name="pbt_history", neurodata_type_inc="DynamicTable", quantity="?",
                         doc="Population-based training: one row per generation and member, with its "
                             "hyperparameters, metric and parent."),
        ],
        links=[
            NWBLinkSpec(name="source_emg", target_type="NWBDataInterface", quantity="?",
                        doc="The EMG series (or container of per-muscle series) the run modelled."),
        ],
    )
    return [muscle_activations, firing_rates, continuous, run]


def main(output_dir: Path | None = None) -> Path:
    output_dir = Path(output_dir or Path(__file__).parent)
    builder = NWBNamespaceBuilder(
        name=NAME, version=VERSION,
        doc="Results of AutoLFADS (LFADS tuned by population-based training) written by nwb-autolfads: "
            "muscle activations, firing rates, other modelled signals (force), latent factors, inferred inputs and their provenance.",
        author=["nwb-autolfads developers"], contact=["https://github.com/nwb-autolfads/nwb-autolfads"],
    )
    builder.include_namespace("core")
    export_spec(builder, build_types(), str(output_dir))
    return output_dir


if __name__ == "__main__":
    print(f"wrote {NAME} {VERSION} YAML to {main()}")
