"""nwb_autolfads.batch without training: which inputs make a batch, discovery of local files,
output names, the plan, the manifest's guards (other settings, another file in the way)."""

import json

import pytest

from nwb_autolfads.batch import MANIFEST, BatchItem, _eta, is_batch, output_name, plan_batch, run_batch
from nwb_autolfads.cli import main
from nwb_autolfads.errors import ConfigError, InputFileError, OutputError
from nwb_autolfads.testing import mock_emg_nwb


@pytest.mark.parametrize("name, modalities, expected", [
    ("sub-R1/sub-R1_ses-2_ecephys.nwb", "emg", "sub-R1/sub-R1_ses-2_desc-autolfads_emg.nwb"),
    ("sub-R1/sub-R1_ses-2_acq-A_behavior+ecephys.nwb", "emg+spikes",
     "sub-R1/sub-R1_ses-2_acq-A_desc-autolfads_emg+spikes.nwb"),
    ("sub-R1_ses-2_desc-raw_ecephys.nwb.zarr", "emg", "sub-R1/sub-R1_ses-2_desc-autolfads_emg.nwb"),
    ("sub-R1/sub-R1_ecephys.nwb", "spikes", "sub-R1/sub-R1_desc-autolfads_spikes.nwb"),
    ("day1/session.nwb", "emg", "day1/session_autolfads.nwb"),
    ("session.nwb", "emg", "session_autolfads.nwb"),
])
def test_output_names_keep_the_inputs_entities(name, modalities, expected):
    assert output_name(name, modalities) == expected


def test_what_makes_a_batch(tmp_path):
    one = mock_emg_nwb(tmp_path / "a.nwb", duration=1.0, rate=500.0, n_muscles=2)
    assert not is_batch([str(one)]) and not is_batch(["missing.nwb"]) and not is_batch(["https://x.org/f.nwb"])
    assert is_batch([str(one), str(one)]) and is_batch([str(tmp_path)]) and is_batch([str(tmp_path / "*.nwb")])
    store = mock_emg_nwb(tmp_path / "z.nwb.zarr", duration=1.0, rate=500.0, n_muscles=2, backend="zarr") \
        if _has_zarr() else None
    if store is not None:
        assert not is_batch([str(store)])  # a Zarr store is one input, not a folder


def _has_zarr():
    try:
        import hdmf_zarr  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    for sub in ("sub-A", "sub-B"):
        (data / sub).mkdir(parents=True)
        mock_emg_nwb(data / sub / f"{sub}_ses-1_ecephys.nwb", duration=1.0, rate=500.0, n_muscles=2)
    (data / "notes.txt").write_text("x")
    (data / "sub-A" / "sub-A_ses-1_desc-autolfads_emg.nwb").write_bytes(b"")  # an earlier output, by name
    (data / "sub-A" / ".sub-A_x.nwb.rundir").mkdir()  # hidden: not looked into
    return data


def test_a_folder_is_planned_with_skips_and_reasons(folder, tmp_path):
    plan = plan_batch([folder], tmp_path / "out", preset="smoke")
    rows = {i.name: (i.status, i.reason, i.output) for i in plan.items}
    assert rows == {
        "notes.txt": ("skipped", "not an NWB file (.nwb or .nwb.zarr)", ""),
        "sub-A/sub-A_ses-1_desc-autolfads_emg.nwb": ("skipped", "an nwb-autolfads output (by its name)", ""),
        "sub-A/sub-A_ses-1_ecephys.nwb": ("pending", "", "sub-A/sub-A_ses-1_desc-autolfads_emg.nwb"),
        "sub-B/sub-B_ses-1_ecephys.nwb": ("pending", "", "sub-B/sub-B_ses-1_desc-autolfads_emg.nwb")}
    text = plan.format()
    assert "2 to run" in text and "2 skipped" in text and "not known before the first input finishes" in text
    assert not (tmp_path / "out").exists()  # planning writes nothing
    # a glob, and a list of files, give the same names (relative to their common folder)
    by_glob = plan_batch([str(folder / "sub-*" / "*_ecephys.nwb")], tmp_path / "out", preset="smoke")
    listed = plan_batch(sorted(folder.glob("sub-*/*_ecephys.nwb")), tmp_path / "out", preset="smoke")
    assert [i.output for i in by_glob.items] == [i.output for i in listed.items] == [
        "sub-A/sub-A_ses-1_desc-autolfads_emg.nwb", "sub-B/sub-B_ses-1_desc-autolfads_emg.nwb"]
    # the output folder inside the input folder: its results are never inputs
    inner = plan_batch([folder], folder / "results", preset="smoke")
    (folder / "results").mkdir()
    assert {i.name for i in inner.items if i.status == "pending"} == {"sub-A/sub-A_ses-1_ecephys.nwb",
                                                                      "sub-B/sub-B_ses-1_ecephys.nwb"}


def test_plan_errors_are_clear(folder, tmp_path):
    with pytest.raises(InputFileError, match="matches no file"):
        plan_batch([str(tmp_path / "nothing" / "*.nwb")], tmp_path / "out")
    with pytest.raises(InputFileError, match=r"pattern .*\*\.txt' matches no NWB file .*1 other file"):
        plan_batch([str(folder / "*.txt")], tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="directory .*empty' holds no NWB file .*: give the recordings"):
        plan_batch([empty], tmp_path / "out")
    (empty / "notes.txt").write_text("x")
    (empty / "sub").mkdir()
    (empty / "sub" / "x.nwb.bak").write_text("x")
    with pytest.raises(InputFileError, match="holds no NWB file .*2 other files"):
        plan_batch([empty, folder], tmp_path / "out")  # one folder without any stops the batch
    with pytest.raises(InputFileError, match="only nwb-autolfads outputs"):
        plan_batch([folder / "sub-A" / "*_desc-autolfads_*"], tmp_path / "out")
    with pytest.raises(InputFileError, match="no NWB file to run in .*inside the output folder"):
        plan_batch([folder / "sub-B"], folder)  # everything found is inside the output folder
    assert not (tmp_path / "out").exists()
    with pytest.raises(OutputError, match="is a file, but several inputs"):
        plan_batch([folder], tmp_path / "out.nwb")
    twin = folder / "sub-A" / "sub-A_ses-1_behavior.nwb"  # the same entities: the same output name
    twin.write_bytes((folder / "sub-A" / "sub-A_ses-1_ecephys.nwb").read_bytes())
    with pytest.raises(ConfigError, match="would both write 'sub-A/sub-A_ses-1_desc-autolfads_emg.nwb'"):
        plan_batch([folder], tmp_path / "out")
    with pytest.raises(ConfigError, match="in-place is for one input file"):
        run_batch([folder], tmp_path / "out", in_place=True)


def test_a_manifest_of_other_settings_is_refused(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    inputs = sorted(folder.glob("sub-B/*_ecephys.nwb"))
    plan = plan_batch(inputs, out, preset="smoke")
    (out / MANIFEST).write_text(json.dumps({"format": "nwb-autolfads batch manifest", "settings": {**plan.settings,
                                            "preset": "quick"}, "modalities": "emg", "assets": []}))
    with pytest.raises(ConfigError, match="other settings .*'preset': 'quick'.*--overwrite"):
        plan_batch(inputs, out, preset="smoke")
    assert plan_batch(inputs, out, preset="smoke", overwrite=True).todo()
    (out / MANIFEST).write_text("{")
    with pytest.raises(OutputError, match="cannot be read"):
        plan_batch(inputs, out, preset="smoke")


def test_settings_are_compared_resolved_the_default_seed_given_or_not(folder, tmp_path):
    """--seed 0 (the default) and no --seed are the same batch, in a manifest of this version
    (resolved settings) and of an earlier one (raw options, seed None); another seed is refused."""
    from nwb_autolfads.batch import _write_manifest
    from nwb_autolfads.config import build_config

    out = tmp_path / "out"
    out.mkdir()
    inputs = sorted(folder.glob("sub-B/*_ecephys.nwb"))
    default = build_config("smoke").seed
    plan = plan_batch(inputs, out, preset="smoke")
    assert plan.settings["seed"] == default and plan.resolved["seed"] == default
    _write_manifest(plan, None, None)
    assert plan_batch(inputs, out, preset="smoke", seed=default).todo()
    assert plan_batch(inputs, out, preset="smoke", overrides={"seed": default}).todo()
    with pytest.raises(ConfigError, match="other settings"):
        plan_batch(inputs, out, preset="smoke", seed=default + 1)
    legacy = json.loads((out / MANIFEST).read_text())
    legacy.pop("resolved")
    legacy["settings"]["seed"] = None  # as earlier versions recorded no --seed
    (out / MANIFEST).write_text(json.dumps(legacy))
    assert plan_batch(inputs, out, preset="smoke", seed=default).todo()
    with pytest.raises(ConfigError, match="other settings"):
        plan_batch(inputs, out, preset="smoke", seed=default + 1)


def test_a_file_in_the_way_is_not_replaced_and_fails_that_input(folder, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "sub-B").mkdir(parents=True)
    theirs = out / "sub-B" / "sub-B_ses-1_desc-autolfads_emg.nwb"
    theirs.write_bytes(b"someone's file")
    code = main(["run", str(folder / "sub-B" / "sub-B_ses-1_ecephys.nwb"), "--jobs", "1", "--dry-run", "-o", str(out)])
    assert code == 0 and "1 to run" in capsys.readouterr().out  # --dry-run makes a batch of one
    result = run_batch([folder / "sub-B" / "sub-B_ses-1_ecephys.nwb"], out, preset="smoke", progress=False)
    assert result.exit_code == 1 and theirs.read_bytes() == b"someone's file"
    (item,) = result.plan.items
    assert item.status == "failed" and "already exists" in item.reason and "--overwrite" in item.reason
    row = json.loads((out / MANIFEST).read_text())["assets"][0]
    assert (row["status"], row["reason"]) == ("failed", item.reason)
    again = run_batch([folder / "sub-B" / "sub-B_ses-1_ecephys.nwb"], out, preset="smoke", progress=False)
    assert again.plan.items[0].status == "failed" and theirs.read_bytes() == b"someone's file"  # still not ours


def test_the_time_left_is_extrapolated_per_byte():
    done = [BatchItem("a", "a", size=1000, status="done", seconds=10.0)]
    left = [BatchItem("b", "b", size=3000), BatchItem("c", "c", size=3000)]
    assert _eta(done, left, jobs=1) == "about 60 s left"
    assert _eta(done, left, jobs=2) == "about 30 s left"
    assert "mean time per input" in _eta(done, [BatchItem("d", "d")], jobs=1)
    assert _eta([], left, 1).startswith("not known") and _eta(done, [], 1) == "nothing left to run"
