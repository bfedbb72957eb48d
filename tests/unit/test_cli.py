import pytest
import yaml

from nwb_autolfads.cli import _parse_sets, build_parser, main
from nwb_autolfads.errors import ConfigError


def test_parse_sets_types_values():
    assert _parse_sets(["train.lr=1e-3", "seed=4", "data.preprocessed=true", "data.emg=acquisition/EMG"]) == {
        "train.lr": 1e-3, "seed": 4, "data.preprocessed": True, "data.emg": "acquisition/EMG"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _parse_sets(["train.lr"])


def test_config_show_prints_resolved_yaml(capsys):
    assert main(["config", "--show", "--preset", "smoke", "--set", "train.lr=0.002"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["preset"] == "smoke" and cfg["train"]["lr"] == 0.002
    assert set(cfg) == {"seed", "device", "preset", "data", "preprocess", "windows", "model", "augment", "train", "pbt",
                        "inference", "output"}


def test_config_show_json(capsys):
    import json

    assert main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "default"


def test_config_errors_are_one_line_exit_2(capsys):
    assert main(["config", "--set", "train.nope=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.nope" in err


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--preset", "turbo"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "turbo" in err


def test_run_needs_a_file_or_example(capsys):
    assert main(["run"]) == 2
    assert "--example" in capsys.readouterr().err
    assert main(["run", "x.nwb", "--example"]) == 2


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


def test_parser_has_the_documented_options():
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for opt in ("--emg", "--output", "--preset", "--seed", "--config", "--set", "--emg-preprocessed", "--device",
                "--overwrite", "--example"):
        assert opt in text


def test_output_content_is_a_setting_and_not_for_in_place(capsys, monkeypatch, tmp_path):
    import nwb_autolfads.pipeline as pipeline

    seen = {}

    def fake_run(path, output, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert main(["run", str(tmp_path / "a.nwb"), "--output-content", "results"]) == 130
    assert seen["overrides"]["output.content"] == "results"
    assert main(["run", str(tmp_path / "a.nwb"), "--output-content", "full", "--in-place"]) == 2
    assert "--in-place" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", str(tmp_path / "a.nwb"), "--output-content", "all"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["config", "--set", "output.content=copy"]) == 2
    assert "output.content" in capsys.readouterr().err


def _overrides_of(monkeypatch, argv: list[str]) -> dict:
    """The ``overrides`` ``run`` passes to :func:`nwb_autolfads.run` for ``argv`` (nothing runs)."""
    import nwb_autolfads.pipeline as pipeline

    seen = {}

    def fake_run(path, output, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert main(argv) == 130
    return seen["overrides"]


def test_run_options_become_their_settings(monkeypatch, tmp_path):
    argv = ["run", str(tmp_path / "a.nwb"), "--set", "train.lr=0.002", "--emg-raw", "--model", "emg+spikes",
            "--observation", "gamma", "--units", "quality == 'good'", "--bad-units", "exclude", "--align-to",
            "start_time", "--window=-0.5,1.0", "--output-content", "results", "--population", "0", "--backend",
            "embedded", "--ray-address", "auto", "--channel-names", "a, b,,c"]
    overrides = _overrides_of(monkeypatch, argv)
    assert overrides == {"train.lr": 0.002, "data.preprocessed": False, "data.modalities": ["emg", "spikes"],
                         "model.observation": "gamma", "data.units": "quality == 'good'", "data.bad_units": "exclude",
                         "data.align_to": "start_time", "data.window": "-0.5,1.0", "output.content": "results",
                         "pbt.population": 0, "pbt.backend": "ray", "pbt.ray_address": "auto",
                         "data.channel_names": ["a", "b", "c"]}
    assert _overrides_of(monkeypatch, ["run", str(tmp_path / "a.nwb"), "--emg-preprocessed"]) == {
        "data.preprocessed": True}  # options not given set nothing


HEAVY = ("numpy", "scipy", "torch", "pynwb", "hdmf", "h5py", "matplotlib", "nwb_autolfads.ndx", "nwb_autolfads.io",
         "nwb_autolfads.pipeline")


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_and_version_import_nothing_heavy(flag):
    """`--help` / `--version` answer before any heavy import: the child's import log (-X importtime)
    names no numpy, torch, pynwb or extension module."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nwb_autolfads", flag], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "nwb-autolfads" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nwb_autolfads.cli" in imported  # the log is read right
    heavy = sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


@pytest.mark.parametrize("argv, expected", [
    (["-vv", "inspect", "f.nwb"], (2, False)), (["inspect", "f.nwb", "-v"], (1, False)),
    (["-v", "run", "f.nwb", "--verbose"], (2, False)), (["-q", "run", "f.nwb"], (0, True)),
    (["run", "f.nwb", "--quiet"], (0, True)), (["config", "--show"], (0, False))])
def test_verbosity_goes_before_or_after_the_command(argv, expected):
    from nwb_autolfads.cli import _verbosity

    assert _verbosity(build_parser().parse_args(argv)) == expected


def test_quiet_and_verbose_together_are_refused(capsys):
    assert main(["-q", "config", "--show", "-v"]) == 2
    assert "-q and -v" in capsys.readouterr().err


def test_log_lines_name_their_level_on_stderr_and_v_adds_info_and_debug(capsys):
    import logging

    from nwb_autolfads.cli import configure_logging

    log = logging.getLogger("nwb_autolfads.pipeline")
    try:
        for verbose, shown in ((0, ["warning"]), (1, ["info", "warning"]), (2, ["debug", "info", "warning"])):
            configure_logging(verbose)
            log.debug("d")
            log.info("i")
            log.warning("w")
            out, err = capsys.readouterr()
            assert out == ""
            assert err.splitlines() == [f"nwb-autolfads: {level}: {level[0]}" for level in shown]
    finally:
        configure_logging(0)
