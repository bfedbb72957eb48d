"""Command-line interface: a thin layer over :func:`nwb_autolfads.run`.

    nwb-autolfads run FILE.nwb [--emg PATH] [--output OUT.nwb] [--preset NAME] [--seed N] ...
    nwb-autolfads run --example
    nwb-autolfads run FILE.nwb --in-place
    nwb-autolfads inspect FILE.nwb [--json]
    nwb-autolfads runs RESULT.nwb [--json]
    nwb-autolfads config --show [--preset NAME] [--config FILE] [--set KEY=VALUE ...]
    nwb-autolfads [-v | -vv | -q] COMMAND ...

stdout carries the results only (the summary, the table, JSON, YAML); progress bars, the training
plan, per-generation lines and log messages go to stderr, as ``nwb-autolfads: LEVEL: message``
lines through :mod:`logging`: warnings by default, ``-v`` adds info, ``-vv`` debug, ``-q`` shows
warnings only and no progress (``-v``/``-q`` go before or after the command).

User errors print one line on stderr and exit with code 2 (no traceback). Nothing heavy (numpy,
torch, pynwb, the extension namespace) is imported before the arguments are parsed: ``--help`` and
``--version`` answer at once, and each command imports what it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from nwb_autolfads import __version__
from nwb_autolfads.config import PRESETS, build_config
from nwb_autolfads.errors import ConfigError, NwbAutolfadsError, OutputError
from nwb_autolfads.model.registry import observation_names, observation_spec
from nwb_autolfads.modalities import modality, modality_names, parse_modalities

EXAMPLE_FILE = "autolfads_example.nwb"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + message otherwise)
        sys.stderr.write(f"nwb-autolfads: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE: write e.g. --set train.max_steps=1000")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str) and _FLOAT.fullmatch(parsed.strip()):
            parsed = float(parsed)  # YAML 1.1 reads 1e-3 (no dot) as a string
        out[key.strip()] = parsed
    return out


def _modalities(text: str) -> tuple[str, ...]:
    """``--model emg+spikes`` -> the canonical tuple of :mod:`nwb_autolfads.modalities` (argparse
    turns the ConfigError into a one-line usage error)."""
    try:
        return parse_modalities(text, "--model")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("invalid config value ", "")) from None


def _verbosity_options(parser: argparse.ArgumentParser, dest: str = "") -> None:
    """``-v`` (repeatable) and ``-q``; a command's own copies get other ``dest`` names, so that a
    command's defaults do not overwrite what was given before the command (:func:`_verbosity`)."""
    parser.add_argument("-v", "--verbose", action="count", default=0, dest=f"{dest}verbose",
                        help="more messages on stderr: -v info, -vv debug")
    parser.add_argument("-q", "--quiet", action="store_true", dest=f"{dest}quiet",
                        help="warnings only: no progress bars, training plan or per-generation lines")


def build_parser() -> argparse.ArgumentParser:
    """The ``nwb-autolfads`` parser: the global options, then one subparser per command (each
    command also takes ``-v``/``-q`` after its name)."""
    parser = _Parser(prog="nwb-autolfads",
                     description="Estimate muscle activation from EMG in NWB files with (Auto)LFADS and write "
                                 "the results back into NWB. Results go to stdout; progress and messages to "
                                 "stderr.")
    parser.add_argument("--version", action="version", version=f"nwb-autolfads {__version__}")
    _verbosity_options(parser)
    common = _Parser(add_help=False)
    _verbosity_options(common, dest="command_")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_command in (_run_parser, _inspect_parser, _runs_parser, _evaluate_parser, _config_parser,
                        _add_apply_parser):
        add_command(sub, common)
    return parser


def _set_option(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable), shared by ``run`` and ``config``."""
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.max_steps=1000 (repeatable)")


def _run_parser(sub, common: argparse.ArgumentParser) -> None:
    """``run``: its options in the order ``run --help`` lists them (input, settings, output and
    state, population training, run directory)."""
    p = sub.add_parser("run", parents=[common], help="model the EMG of an NWB file and write a new NWB file with the results",
                       description="Read EMG from FILE, preprocess, train LFADS, infer muscle activations and "
                                   "write them (with factors and inferred inputs) to a new NWB file.")
    _run_input_options(p)
    _run_settings_options(p)
    _run_output_options(p)
    _run_population_options(p)
    _run_state_options(p)


def _run_input_options(p: argparse.ArgumentParser) -> None:
    """What ``run`` reads and models: FILE or --example, the modalities and the observation model,
    the EMG series, trial alignment, the units and what to do with bad ones."""
    p.add_argument("file", nargs="*", help="input NWB file (opened read-only, never modified): an .nwb file, an NWB "
                                           "Zarr store (*.nwb.zarr), an http(s) URL or a DANDI URL; or several, a "
                                           "folder, a glob or a dandiset (DANDI:000941): see --dry-run")
    _batch_options(p)
    p.add_argument("--example", action="store_true",
                   help=f"write a synthetic 12-muscle EMG file ({EXAMPLE_FILE}) in the current directory and "
                        "run on it (preset 'quick' unless --preset is given)")
    p.add_argument("--model", type=_modalities, metavar="M[+M...]",
                   help="what to model, in one model (data.modalities), joined by '+', e.g. emg+spikes or emg+force "
                        "(default emg): " + "; ".join(f"{n}: {modality(n).doc}" for n in modality_names()))
    p.add_argument("--observation", choices=observation_names("nonnegative"),
                   help="observation model of the EMG (model.observation): " + "; ".join(
                       f"{n}: {observation_spec(n).doc}" for n in observation_names("nonnegative")))
    p.add_argument("--emg", metavar="PATH", help="object path of the EMG series, e.g. acquisition/EMG "
                                                 "(default: found automatically)")
    p.add_argument("--align-to", metavar="COLUMN",
                   help="trial-aligned mode: a time column of the trials table (e.g. start_time); each trial's "
                        "--window around it is one model window")
    p.add_argument("--window", metavar="START,STOP",
                   help="with --align-to: seconds relative to the alignment time, e.g. -0.5,1.0")
    p.add_argument("--units", metavar="QUERY", help="filter of the units table, e.g. \"quality == 'good'\"")
    p.add_argument("--bad-units", choices=["refuse", "exclude"],
                   help="units whose spike times cannot be right (NaN, negative, not ascending, mostly outside the "
                        "modelled time): refuse (default; stop with an error naming them) or exclude (leave them out "
                        "with a warning)")


def _run_settings_options(p: argparse.ArgumentParser) -> None:
    """``run``'s output path, the settings (preset, seed, config file, --set), the state of the
    EMG, channel names and the device."""
    p.add_argument("-o", "--output", metavar="OUT.nwb", help="output file (default: <input>_autolfads.nwb "
                                                              "beside the input)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="training budget: smoke (a pipeline check: a tiny model, a few dozen steps; its results are not "
                        "meant to be used), quick (minutes, one model), default "
                        "(AutoLFADS: population-based training of 20 members), paper (the published settings)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--config", metavar="FILE",
                   help="YAML config file (see `nwb-autolfads config --show`); its values apply over the preset, "
                        "and a file that names another preset than --preset is refused")
    _set_option(p)
    state = p.add_mutually_exclusive_group()
    state.add_argument("--emg-preprocessed", action="store_true",
                       help="the EMG is already rectified/enveloped: skip notch, high-pass and rectification (EMG "
                            "also binned, sampled below 1 kHz, keeps its own bins unless windows.bin_size is set)")
    state.add_argument("--emg-raw", action="store_true", help="the EMG is raw: apply every preprocessing step")
    p.add_argument("--channel-names", metavar="A,B,...", help="names of the EMG channels, comma-separated")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device (default auto)")


def _run_output_options(p: argparse.ArgumentParser) -> None:
    """How ``run`` writes: --overwrite, --in-place, --output-content."""
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--in-place", action="store_true",
                   help="add the results to FILE itself instead of writing a new file (atomic: an interruption "
                        "leaves FILE untouched or complete; needs free disk space for one copy of FILE)")
    p.add_argument("--output-content", choices=["results", "full"],
                   help="what a new output file holds: results (the results and where the input is; the default "
                        "for a URL or DANDI input, which is then never downloaded whole) or full (a copy of the "
                        "input's content plus the results; the default for a local file)")


def _run_population_options(p: argparse.ArgumentParser) -> None:
    """Population-based training: --population, --backend, --ray-address."""
    p.add_argument("--population", type=int, metavar="N",
                   help="population-based training with N members (default preset: 20); 1 trains a single model "
                        "with the configured hyperparameters")
    p.add_argument("--backend", choices=["embedded", "ray"],
                   help="where population-based training runs: embedded (default; this machine, nothing to start) "
                        "or ray (Ray tasks; pip install \"nwb-autolfads[ray]\"); for several inputs, each input is "
                        "a Ray task (trained embedded), so a cluster's machines share them")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --backend ray: a running Ray cluster (HEAD:6379 or auto); default: start a local one")


def _run_state_options(p: argparse.ArgumentParser) -> None:
    """The run directory (--resume, --fresh), the run's name and the report."""
    p.add_argument("--resume", metavar="RUNDIR",
                   help="continue an interrupted run from its run directory (by default the same command run "
                        "again continues from .<output>.rundir beside the output)")
    p.add_argument("--fresh", action="store_true",
                   help="start afresh although .<output>.rundir holds an interrupted run with other settings: its "
                        "state is moved aside to .<output>.rundir.<UTC time> (never deleted)")
    p.add_argument("--run-name", metavar="NAME", help="name of the run in processing/autolfads "
                                                      "(default run_<UTC start time>)")
    p.add_argument("--report", metavar="DIR", help="after training, evaluate the result against the baselines and "
                                                   "write a report (index.html + figures) into DIR (checked before "
                                                   "training; it must be new, empty or a previous report, which is "
                                                   "replaced whole; any other folder is refused, --overwrite or not)")


def _inspect_parser(sub, common: argparse.ArgumentParser) -> None:
    i = sub.add_parser("inspect", parents=[common], help="list what an NWB file holds (EMG, kinematics, force, units, trials) and "
                                       "what `run` would use",
                       description="List every candidate series per modality (path, type, shape, rate, unit, time "
                                   "span, channel names), the units and trials tables, and what `run` would model by "
                                   "default (or what to pass instead).")
    i.add_argument("file", help="NWB file (opened read-only): .nwb, *.nwb.zarr, http(s) or DANDI URL")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")


def _runs_parser(sub, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("runs", parents=[common], help="list the nwb-autolfads runs stored in a file, with their key provenance",
                       description="List the runs in processing/autolfads of FILE: name, times, software version "
                                   "and git revision, preset, modelled signals, seed, steps and validation NLL.")
    r.add_argument("file", help="NWB file with nwb-autolfads results")
    r.add_argument("--json", action="store_true", help="print JSON instead of text")


def _evaluate_parser(sub, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("evaluate", parents=[common], help="score a stored run against rectified EMG, low-pass and Bayesian filtering "
                                        "(kinematics decoding, force, cortical spikes, ground truth)",
                       description="Read the source signals and the stored results of RESULT, compute the baselines "
                                   "(parameters chosen by cross-validation) and the metrics, print a table, and "
                                   "optionally write JSON and an HTML report.")
    e.add_argument("file", metavar="RESULT", help="NWB file with nwb-autolfads results (the output of run)")
    e.add_argument("--run", metavar="NAME", help="which run (default: the latest; see `nwb-autolfads runs`)")
    e.add_argument("--json", action="store_true", help="print JSON instead of the table")
    e.add_argument("--report", metavar="DIR", help="write index.html, PNG figures and evaluation.json into DIR (a "
                                                   "previous report there is replaced whole; any other non-empty "
                                                   "folder is refused)")
    e.add_argument("--overwrite", action="store_true", help="no effect (kept for old scripts): a --report folder that "
                                                            "holds anything but a previous report is never replaced")
    e.add_argument("--folds", type=int, default=5, help="contiguous cross-validation folds (default 5)")
    e.add_argument("--lags", type=int, default=10, help="history of the ridge decoders in bins (default 10)")
    e.add_argument("--source", metavar="FILE_OR_URL",
                   help="for a results-only file: where its source is now (local path or URL), if it is no longer "
                        "where the run read it")


def _config_parser(sub, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("config", parents=[common], help="print the resolved configuration (defaults, preset, file, overrides)",
                       description="Print the configuration `run` would use with the same --preset, --config and "
                                   "--set: every setting, with its description and unit as a YAML comment. "
                                   "Priority, lowest first: defaults, the preset, the config file, --set. The "
                                   "preset applies underneath the file (the file's values win); a file written "
                                   "by `config --show` names its preset, and a different --preset with it is "
                                   "refused (write one with `config --show --preset NAME > FILE`). Some preset "
                                   "values depend on what is modelled (the quick preset's controller is for EMG "
                                   "alone): add --set data.modalities=spikes (or emg+spikes) to see a spikes run's.")
    c.add_argument("--show", action="store_true", help="print the configuration (the default action)")
    c.add_argument("--preset", choices=sorted(PRESETS),
                   help="start from this preset (default: the config file's preset, else 'default')")
    c.add_argument("--config", metavar="FILE", help="YAML config file whose values apply over the preset")
    _set_option(c)
    c.add_argument("--json", action="store_true", help="JSON instead of YAML (no descriptions)")


def _cmd_config(args) -> int:
    cfg = build_config(preset=args.preset, file=args.config, overrides=_parse_sets(args.set))
    sys.stdout.write(cfg.to_json() + "\n" if args.json else cfg.to_yaml(comments=True))
    return 0


def _cmd_inspect(args) -> int:
    import json

    from nwb_autolfads.io.inspection import format_report, inspect_file

    report = inspect_file(args.file)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _cmd_runs(args) -> int:
    import json

    from nwb_autolfads.io.results import format_runs, list_runs

    runs = list_runs(args.file)
    print(json.dumps([r.to_dict() for r in runs], indent=2) if args.json else format_runs(args.file, runs))
    return 0


def _evaluate_and_report(path, run_name, report, folds=5, lags=10, as_json=False, overwrite=False,
                         source=None, progress=True) -> None:
    from nwb_autolfads.evaluation.comparison import evaluate
    from nwb_autolfads.evaluation.report import check_report_folder, write_report

    if folds < 2:
        raise ConfigError(f"--folds {folds}: use at least 2 folds")
    if lags < 0:
        raise ConfigError(f"--lags {lags}: use 0 or more bins of history")
    if report:
        check_report_folder(report, overwrite)  # before the evaluation's minutes
    ev = evaluate(path, run_name, folds=folds, lags=lags, source=source, progress=progress)
    print(ev.to_json() if as_json else ev.table())
    if report:
        index = write_report(ev, report, overwrite=overwrite)
        print(f"report: {index}", file=sys.stderr if as_json else sys.stdout)


def _cmd_evaluate(args) -> int:
    _evaluate_and_report(args.file, args.run, args.report, args.folds, args.lags, args.json, args.overwrite,
                         args.source, progress=not args.quiet)
    return 0


def _cmd_run(args) -> int:
    """``run``: the settings from the options, the report folder checked, the input chosen, then
    :func:`nwb_autolfads.run`, its summary, and the report."""
    overrides = _run_overrides(args)
    if args.report:
        from nwb_autolfads.evaluation.report import check_report_folder
        folder = check_report_folder(args.report, args.overwrite)  # before hours of training
        output = Path(args.output).absolute() if getattr(args, "output", None) else None
        if output is not None and (output == folder or folder in output.parents):
            raise OutputError(f"--output {args.output!r} is inside the report folder {args.report!r}, which a report "
                              f"replaces whole: write the output elsewhere, or the report into a folder of its own, "
                              f"e.g. --report {str(Path(args.report) / 'report')!r}")
    path, preset = _run_input(args)
    if not args.example and _is_batch(args):  # several inputs, a folder, a glob or a dandiset: nwb_autolfads.batch
        args.batching = True
        return _cmd_batch(args, preset, overrides)
    result = _run_pipeline(args, path[0] if isinstance(path, list) else path, preset, overrides)
    args.written = result.output
    print(result.summary(report=args.report))
    if args.example:
        _print_example_score(path, result)
    if args.report:
        _evaluate_and_report(result.output, result.run_name, args.report, overwrite=args.overwrite,
                             progress=not args.quiet)
    return 0


_RUN_SETTINGS = {"model": "data.modalities", "observation": "model.observation", "units": "data.units",
                 "bad_units": "data.bad_units", "align_to": "data.align_to", "window": "data.window",
                 "output_content": "output.content", "population": "pbt.population", "backend": "pbt.backend"}
"""``run`` options that set one setting each (argument name -> config key), when given (a
population of 0 too: the configuration refuses it)."""


def _run_overrides(args) -> dict[str, Any]:
    """The settings ``run``'s options give: ``--set`` items, then the options that name one
    setting (:data:`_RUN_SETTINGS`) and those with a rule of their own.

    Raises
    ------
    ConfigError
        A ``--set`` item is not KEY=VALUE, or ``--output-content`` is given with ``--in-place``.
    """
    overrides = _parse_sets(args.set)
    if args.emg_preprocessed:
        overrides["data.preprocessed"] = True
    if args.emg_raw:
        overrides["data.preprocessed"] = False
    if args.output_content and args.in_place:
        raise ConfigError("--output-content is for a new output file: --in-place adds the results to the input "
                          "itself; give one of them")
    for name, key in _RUN_SETTINGS.items():
        value = getattr(args, name)
        if value or (name == "population" and value is not None):
            overrides[key] = list(value) if name == "model" else value
    if args.ray_address:
        overrides["pbt.backend"] = "ray"  # an address means Ray
        overrides["pbt.ray_address"] = args.ray_address
    if args.channel_names:
        overrides["data.channel_names"] = [s.strip() for s in args.channel_names.split(",") if s.strip()]
    return overrides


def _run_input(args) -> tuple[str | Path, str | None]:
    """(what ``run`` reads, the preset): FILE as given (a path or URL), or with ``--example`` the
    synthetic example file (written in the current directory unless there) and preset 'quick'
    unless ``--preset`` is given.

    Raises
    ------
    ConfigError
        Neither or both of FILE and ``--example``.
    """
    if not args.example:
        if not args.file:
            raise ConfigError("no input file: give FILE.nwb, or --example to run on a built-in example")
        return args.file, args.preset  # a path or a URL: run() resolves it
    if args.file:
        raise ConfigError("give either FILE or --example, not both")
    path = Path(EXAMPLE_FILE)
    if not path.exists():
        from nwb_autolfads.testing import mock_emg_nwb
        if not args.quiet:
            print(f"writing synthetic example {path} (1 minute of raw EMG, 12 muscles, 2 kHz) ...", file=sys.stderr)
        mock_emg_nwb(path, duration=60.0, rate=2000.0, n_muscles=12, seed=0)
    # an existing result is replaced only with --overwrite, like any output
    return path, args.preset or "quick"


def _run_pipeline(args, path: str | Path, preset: str | None, overrides: dict[str, Any]):
    """:func:`nwb_autolfads.run` with ``run``'s options; returns its RunResult."""
    from nwb_autolfads.pipeline import run

    return run(path, args.output, preset=preset, config=args.config, overrides=overrides, emg=args.emg,
               seed=args.seed, device=args.device, overwrite=args.overwrite, in_place=args.in_place,
               run_name=args.run_name, progress=not args.quiet, resume=args.resume, fresh=args.fresh,
               command=shlex.join(["nwb-autolfads", *args.argv]))


def _print_example_score(path: Path, result) -> None:
    """For ``--example``: the correlation of the model's activations and of the rectified EMG
    with the example's true activations (one line on stdout)."""
    import numpy as np

    from nwb_autolfads.evaluation.metrics import channel_correlation
    from nwb_autolfads.testing import read_truth
    truth = read_truth(path, result.times, result.config.windows.bin_size)
    r_model = float(np.nanmean(channel_correlation(result.activations, truth)))
    r_rect = float(np.nanmean(channel_correlation(result.rectified, truth)))
    print(f"  example     correlation with the true activations (mean over muscles): "
          f"AutoLFADS {r_model:.3f}, rectified EMG {r_rect:.3f}")


class _LevelFormatter(logging.Formatter):
    """``nwb-autolfads: warning: message``: the record's level name, in lower case (the record
    itself is left as it is for other handlers)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"nwb-autolfads: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to ``sys.stderr`` as it is when a record comes (replaced by a test's
    capture, or a caller's redirection), not as it was when the handler was made."""

    _nwb_autolfads = True

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.setStream: stderr is always the current one
        pass


def _verbosity(args) -> tuple[int, bool]:
    """(verbose count, quiet) from the options given before and after the command."""
    verbose = args.verbose + getattr(args, "command_verbose", 0)
    quiet = args.quiet or getattr(args, "command_quiet", False)
    if quiet and verbose:
        raise ConfigError("-q and -v contradict each other: give one of them")
    return verbose, quiet


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Send log records to stderr as ``nwb-autolfads: LEVEL: message`` lines: the package's
    warnings (and other libraries' warnings) by default and with ``quiet``; its info messages
    with ``verbose=1``, debug with ``verbose>=2``. Calling it again replaces the handler it added
    (it writes to the ``sys.stderr`` of the moment, whatever replaced it since)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_nwb_autolfads", False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_LevelFormatter())
    root.addHandler(handler)
    # only the package's own logger is made more verbose (other libraries stay at warnings); without
    # -v it follows the root logger (WARNING unless the embedding program chose otherwise)
    logging.getLogger("nwb_autolfads").setLevel(
        logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.NOTSET)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush does not fail again on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured, replaced)
        pass


def _unknown_options(parser: argparse.ArgumentParser, command: str | None, extras: list[str]) -> None:
    """Exit 2 with one line naming the unknown arguments, the closest option of ``command`` and
    ``nwb-autolfads COMMAND --help``."""
    import difflib

    choices = parser._subparsers._group_actions[0].choices if parser._subparsers else {}
    sub = choices.get(command, parser)
    options = [s for a in sub._actions for s in a.option_strings]
    hints = [f"did you mean {m[0]}?" for m in (difflib.get_close_matches(x.split("=")[0], options, n=1)
                                                for x in extras if x.startswith("-")) if m]
    sub.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # an unknown option of a command: that command's usage, not the top level's
        _unknown_options(parser, args.command, extras)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    commands = {"config": _cmd_config, "inspect": _cmd_inspect, "runs": _cmd_runs, "evaluate": _cmd_evaluate,
                "apply": _cmd_apply}
    args.written = None  # run: the output, once it is in place (what an interrupt then says)
    try:
        with _terminate_as_interrupt():
            verbose, args.quiet = _verbosity(args)
            configure_logging(verbose, args.quiet)
            code = commands.get(args.command, _cmd_run)(args)
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
            return code
    except BrokenPipeError:
        # the reader stopped reading (`nwb-autolfads inspect X | head -1`): what it wanted was printed
        _silence_stdout()
        return 0
    except NwbAutolfadsError as exc:
        sys.stderr.write(f"nwb-autolfads: error: {exc}\n")
        return 2
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"nwb-autolfads: {_interrupted(args, exc)}\n")
        return 143 if isinstance(exc, Terminated) else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop, ``kill``): handled as Ctrl-C is (checkpoints whole, outputs
    never half written, one line on stderr), exit code 143. It once ended a run silently."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises :class:`Terminated` in the main thread while the command runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_number, _frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except (ValueError, OSError):  # pragma: no cover - not settable here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(args, exc: BaseException) -> str:
    """The line an interrupt (Ctrl-C, SIGTERM) ends a command with: what was and was not written,
    and how to go on."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    command = args.command or "run"
    if command in ("inspect", "runs", "config"):
        return what
    if command == "evaluate":
        return f"{what}; nothing was written (run the same command again)"
    if command == "apply":
        return f"{what}; no output was written (run the same command again)"
    if getattr(args, "written", None):
        return (f"{what} after the output was written: {args.written} is complete; the report was not written "
                f"(nwb-autolfads evaluate {args.written} --report {args.report})")
    if getattr(args, "batching", False):
        return (f"{what}; the inputs finished are kept and listed in the output folder's manifest (run the same "
                "command again to continue)")
    return (f"{what}; no output was written (run the same command again to continue from the last validation "
            "check or generation)")


def _batch_options(p: argparse.ArgumentParser) -> None:
    """The options of ``run`` for a batch (:mod:`nwb_autolfads.batch`)."""
    g = p.add_argument_group("several inputs (a dandiset, a folder, a glob or a list: one result each)")
    g.add_argument("--dry-run", action="store_true", help="print the plan (inputs, sizes, what is skipped and why, "
                   "outputs, time) and exit")
    g.add_argument("--jobs", type=int, metavar="N", help="inputs run at once, each in its own process (default 1); "
                   "with --backend ray the Ray tasks in flight (default: the cluster's CPUs / the CPUs of one run)")
    g.add_argument("--multi-session", action="store_true",
                   help="one model per subject over its sessions (the sub-<label> in the paths, else the files' "
                        "subject_id; files naming neither together): a read-in and read-out per session, shared "
                        "dynamics; each session's result in its own output")


def _is_batch(args) -> bool:
    from nwb_autolfads.batch import is_batch

    return args.dry_run or args.jobs not in (None, 1) or args.multi_session or is_batch(args.file)


def _cmd_batch(args, preset: str | None, overrides: dict[str, Any]) -> int:
    """``run`` with several inputs: :func:`nwb_autolfads.batch.run_batch`; the plan (stdout with
    --dry-run), the summary on stdout; exit 1 if an input failed."""
    from nwb_autolfads.batch import run_batch

    for flag, given in (("--in-place", args.in_place), ("--resume", args.resume), ("--report", args.report)):
        if given:
            raise ConfigError(f"{flag} is for one input file, not a batch: leave it out (`nwb-autolfads evaluate "
                              "OUT.nwb --report DIR` evaluates one result afterwards)")
    result = run_batch(args.file, args.output, preset=preset, config=args.config, overrides=overrides, emg=args.emg,
                       seed=args.seed, device=args.device, overwrite=args.overwrite, jobs=args.jobs,
                       dry_run=args.dry_run, progress=not args.quiet, run_name=args.run_name, fresh=args.fresh,
                       command=shlex.join(["nwb-autolfads", *args.argv]), multi_session=args.multi_session)
    print(result.plan.format() if args.dry_run else result.summary())
    return result.exit_code


def _add_apply_parser(sub, common: argparse.ArgumentParser) -> None:
    """``nwb-autolfads apply MODEL FILE``: a saved model on new data (:func:`nwb_autolfads.apply`)."""
    a = sub.add_parser("apply", parents=[common], help="apply a trained model (the .autolfads-model folder a run "
                                                       "saved) to another NWB file, without training",
                       description="Read FILE with the model's modalities, match its channels to the model's by name "
                                   "(reordered to the model's order), preprocess and bin them as the training data "
                                   "were (the model's stored scales unless --rescale), infer with the model's "
                                   "inference settings and seed, and write a new NWB file whose run names the model "
                                   "applied and the source it was trained on. Missing or unknown channels stop it "
                                   "with one line naming them.")
    a.add_argument("model", metavar="MODEL", help="model folder written beside a run's output (<output "
                                                  "stem>.autolfads-model), or its model.json")
    a.add_argument("file", help="NWB file to apply it to (opened read-only, never modified): .nwb, *.nwb.zarr, an "
                                "http(s) or DANDI URL")
    a.add_argument("-o", "--output", metavar="OUT.nwb", help="output file (default: <input>_autolfads.nwb beside "
                                                              "the input)")
    a.add_argument("--rescale", action="store_true",
                   help="estimate the per-channel scales on FILE (a recording with another gain) instead of using "
                        "the model's stored ones")
    a.add_argument("--session", metavar="NAME",
                   help="for a model trained over several sessions (run --multi-session): the session whose read-in "
                        "and read-out to use (its channels must match FILE's); `nwb-autolfads apply MODEL FILE` "
                        "without it lists them")
    a.add_argument("--drop-extra", action="store_true",
                   help="leave out, with a warning, channels of FILE the model does not know (refused by default)")
    a.add_argument("--emg", metavar="PATH", help="object path of the EMG series in FILE (default: the model's, or "
                                                 "found automatically)")
    a.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device (default: the model's setting)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    a.add_argument("--run-name", metavar="NAME", help="name of the run in processing/autolfads "
                                                      "(default run_<UTC start time>)")


def _cmd_apply(args) -> int:
    from nwb_autolfads.reuse import apply

    result = apply(args.model, args.file, args.output, rescale=args.rescale, emg=args.emg, drop_extra=args.drop_extra,
                   session=args.session,
                   device=args.device, overwrite=args.overwrite, run_name=args.run_name, progress=not args.quiet,
                   command=shlex.join(["nwb-autolfads", *args.argv]))
    print(result.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
