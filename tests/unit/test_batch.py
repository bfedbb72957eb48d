"""nwb_autolfads.batch without training: which inputs make a batch, discovery of local files,
output names, the plan, the manifest's guards (other settings, another file in the way)."""

import json
import os

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


# ---- reruns: a done item is kept only while its output, its input and its model are unchanged


def _fake_done(plan, seconds=2.0, model_of=None):
    """Mark every item to run done as a run of the batch would (a fake output and model folder,
    the input's identity, ``seconds`` each) and write the manifest; ``model_of(item)``: its model
    folder relative to the output folder (default: one beside its output)."""
    from nwb_autolfads.batch import _input_identity, _record, _write_manifest
    from nwb_autolfads.io.writing import file_sha256

    for item in plan.todo():
        output = plan.out / item.output
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"result of " + item.name.encode())
        model = model_of(item) if model_of else item.output.replace(".nwb", ".autolfads-model")
        (plan.out / model).mkdir(parents=True, exist_ok=True)
        (plan.out / model / "model.safetensors").write_bytes(b"weights of " + model.encode())
        (plan.out / model / "model.json").write_text("{}")
        _record(item, {"status": "done", "output_sha256": file_sha256(output), "seconds": seconds, "model": model,
                       "model_sha256": file_sha256(plan.out / model / "model.safetensors"),
                       **_input_identity(item.input)})
    _write_manifest(plan, None, None)


def _states(plan):
    return {i.name: (i.status, i.reason) for i in plan.items if i.status != "skipped"}


CHANGED = "its input changed since its result was written"
KEPT = ": its earlier result is kept; pass --overwrite to run it again and replace it"


def test_a_done_item_runs_again_when_its_input_changed(folder, tmp_path):
    out = tmp_path / "out"
    a, b = "sub-A/sub-A_ses-1_ecephys.nwb", "sub-B/sub-B_ses-1_ecephys.nwb"
    _fake_done(plan_batch([folder], out, preset="smoke"))
    assert _states(plan_batch([folder], out, preset="smoke")) == {a: ("done", ""), b: ("done", "")}
    stat = (folder / a).stat()
    os.utime(folder / a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: hashed, the same
    assert _states(plan_batch([folder], out, preset="smoke")) == {a: ("done", ""), b: ("done", "")}
    # replaced by another file of the same size with the time kept (cp -p, rsync -a): still seen
    data = bytearray((folder / a).read_bytes())
    data[-1] ^= 0xFF
    stat = (folder / a).stat()
    (folder / a).write_bytes(bytes(data))
    os.utime(folder / a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _states(plan_batch([folder], out, preset="smoke", overwrite=True))[a] == ("pending", CHANGED)
    # without --overwrite the earlier result is kept (a user may have annotated it), and said
    assert _states(plan_batch([folder], out, preset="smoke"))[a] == ("kept", CHANGED + KEPT)
    mock_emg_nwb(folder / a, duration=1.0, rate=500.0, n_muscles=2, seed=7)  # rewritten with other data
    plan = plan_batch([folder], out, preset="smoke", overwrite=True)
    assert _states(plan) == {a: ("pending", CHANGED), b: ("done", "")}
    assert f"run   -> sub-A/sub-A_ses-1_desc-autolfads_emg.nwb (again: {CHANGED})" in plan.format()
    plan = plan_batch([folder], out, preset="smoke")
    assert f"keep  {CHANGED}{KEPT}" in plan.format() and "1 kept as they are" in plan.format() and not plan.todo()
    # a manifest of an earlier version records no input identity: the output's provenance is the
    # reference (here a fake output, which proves nothing: run again)
    legacy = json.loads((out / MANIFEST).read_text())
    for row in legacy["assets"]:
        for key in ("input_sha256", "input_mtime_ns"):
            row.pop(key, None)
    (out / MANIFEST).write_text(json.dumps(legacy))
    assert _states(plan_batch([folder], out, preset="smoke", overwrite=True)) == {a: ("pending", CHANGED),
                                                                                 b: ("pending", CHANGED)}


def test_a_done_item_stays_done_when_its_model_folder_is_missing_or_changed(folder, tmp_path):
    """A tester's report: a model folder deleted to save space made the next batch (run to add a
    new input) train that input again and replace its result, without --overwrite."""
    import shutil

    out = tmp_path / "out"
    a, b = "sub-A/sub-A_ses-1_ecephys.nwb", "sub-B/sub-B_ses-1_ecephys.nwb"
    _fake_done(plan_batch([folder], out, preset="smoke"))
    shutil.rmtree(out / "sub-A" / "sub-A_ses-1_desc-autolfads_emg.autolfads-model")
    (out / "sub-B" / "sub-B_ses-1_desc-autolfads_emg.autolfads-model" / "model.safetensors").write_bytes(b"other")
    plan = plan_batch([folder], out, preset="smoke")
    note = "its model folder {} is missing or changed (the result is kept; remove it to train again)"
    assert _states(plan) == {
        a: ("done", note.format("sub-A/sub-A_ses-1_desc-autolfads_emg.autolfads-model")),
        b: ("done", note.format("sub-B/sub-B_ses-1_desc-autolfads_emg.autolfads-model"))}
    assert "done  earlier (output and input verified; its model folder sub-A/" in plan.format() and not plan.todo()


def test_a_done_item_keeps_its_model_in_the_manifest_when_the_batch_runs_again(folder, tmp_path):
    from nwb_autolfads.batch import _write_manifest

    out = tmp_path / "out"
    _fake_done(plan_batch([folder], out, preset="smoke"))
    before = {r["name"]: r for r in json.loads((out / MANIFEST).read_text())["assets"]}
    _write_manifest(plan_batch([folder], out, preset="smoke"), None, None)  # as a rerun writes it
    after = {r["name"]: r for r in json.loads((out / MANIFEST).read_text())["assets"]}
    for name, row in after.items():
        if row["status"] == "done":
            assert {k: row[k] for k in ("model", "model_sha256", "input_sha256", "seconds")} == \
                   {k: before[name][k] for k in ("model", "model_sha256", "input_sha256", "seconds")}


def test_a_dandi_asset_is_changed_when_its_asset_id_or_size_is_another(tmp_path):
    from nwb_autolfads.batch import _input_changed

    item = BatchItem("sub-1/sub-1_ses-1.nwb", "dandi://dandi/000941@draft/sub-1/sub-1_ses-1.nwb", size=100,
                     asset_id="a-2", version="draft")
    assert _input_changed(item, {"asset_id": "a-1", "size": 100}, tmp_path / "x.nwb")
    assert _input_changed(item, {"asset_id": "a-2", "size": 99}, tmp_path / "x.nwb")
    assert not _input_changed(item, {"asset_id": "a-2", "size": 100, "version": "0.1.0"}, tmp_path / "x.nwb")


# ---- multi-session: subjects


def test_multi_session_groups_files_without_a_subject_in_their_paths_by_their_subject_id(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, subject in (("a", "rat1"), ("b", "rat2"), ("c", "rat1")):
        mock_emg_nwb(data / f"{name}.nwb", duration=1.0, rate=500.0, n_muscles=2, session={"subject_id": subject})
    mock_emg_nwb(data / "sub-R9_ses-1_ecephys.nwb", duration=1.0, rate=500.0, n_muscles=2,
                 session={"subject_id": "rat1"})  # the path's label decides
    (data / "d.nwb").write_text("not NWB: names no subject")
    plan = plan_batch([data], tmp_path / "out", preset="smoke", multi_session=True)
    assert [[i.name for i in g] for g in plan.groups()] == [["a.nwb", "c.nwb"], ["b.nwb"], ["d.nwb"],
                                                            ["sub-R9_ses-1_ecephys.nwb"]]
    text = plan.format()
    assert "rat1 (the subject_id in the files): 2 session(s)" in text and "R9: 1 session(s)" in text
    assert "(no subject: neither the paths (sub-<label>) nor the files (general/subject/subject_id) name one" in text
    assert not plan_batch([data], tmp_path / "out", preset="smoke").items[0].subject  # only read for multi-session


@pytest.mark.skipif(not _has_zarr(), reason="hdmf-zarr not installed")
def test_the_subject_id_of_a_zarr_store_is_read(tmp_path):
    from nwb_autolfads.batch import file_subject_id

    store = mock_emg_nwb(tmp_path / "z.nwb.zarr", duration=1.0, rate=500.0, n_muscles=2, backend="zarr",
                         session={"subject_id": "M 7"})
    assert file_subject_id(store) == "M 7" and file_subject_id(tmp_path / "missing.nwb") == ""


def test_a_changed_session_trains_its_subjects_model_again(tmp_path):
    data = tmp_path / "data"
    for sub, ses in (("A", 1), ("A", 2), ("B", 1)):
        (data / f"sub-{sub}").mkdir(parents=True, exist_ok=True)
        mock_emg_nwb(data / f"sub-{sub}" / f"sub-{sub}_ses-{ses}_ecephys.nwb", duration=1.0, rate=500.0, n_muscles=2,
                     seed=ses)
    out = tmp_path / "out"
    _fake_done(plan_batch([data], out, preset="smoke", multi_session=True),
               model_of=lambda item: f"sub-{item.subject}/model.sessions.autolfads-model")
    plan = plan_batch([data], out, preset="smoke", multi_session=True)
    assert {s for s, _ in _states(plan).values()} == {"done"}
    assert "~3 s per subject's model in earlier runs of this batch (mean of 2)" in plan.format()
    mock_emg_nwb(data / "sub-A" / "sub-A_ses-2_ecephys.nwb", duration=1.0, rate=500.0, n_muscles=2, seed=9)
    kept = _states(plan_batch([data], out, preset="smoke", multi_session=True))  # their results are kept
    assert kept["sub-A/sub-A_ses-2_ecephys.nwb"] == ("kept", CHANGED + KEPT)
    assert kept["sub-A/sub-A_ses-1_ecephys.nwb"] == (
        "kept", f"its subject's model would replace earlier results (sub-A/sub-A_ses-2_ecephys.nwb: {CHANGED}{KEPT})")
    assert kept["sub-B/sub-B_ses-1_ecephys.nwb"] == ("done", "")
    plan = plan_batch([data], out, preset="smoke", multi_session=True, overwrite=True)
    assert _states(plan) == {
        "sub-A/sub-A_ses-1_ecephys.nwb": ("pending", f"its subject's model is trained again (sub-A/sub-A_ses-2_ecephys"
                                                     f".nwb: {CHANGED})"),
        "sub-A/sub-A_ses-2_ecephys.nwb": ("pending", CHANGED),
        "sub-B/sub-B_ses-1_ecephys.nwb": ("done", "")}
    assert "about 3 s left (from the mean time per subject's model)" in plan.format()


def test_one_progress_line_per_multi_session_group_with_the_time_left_per_model(tmp_path, monkeypatch, capsys):
    import nwb_autolfads.batch as batch

    data = tmp_path / "data"
    for sub, n in (("A", 3), ("B", 2), ("C", 1)):
        (data / f"sub-{sub}").mkdir(parents=True)
        for ses in range(n):
            (data / f"sub-{sub}" / f"sub-{sub}_ses-{ses}_ecephys.nwb").write_bytes(b"x" * (1000 + ses))
    monkeypatch.setattr(batch, "_run_group", lambda inputs, outputs, kwargs, root: [
        {"status": "done", "reason": "", "seconds": 30.0 / len(inputs)} for _ in inputs])
    result = run_batch([data], tmp_path / "out", preset="smoke", multi_session=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nwb-autolfads: batch:")]
    assert len(lines) == 6, lines  # a start and an end line per group
    assert "subject A: one model over 3 sessions" in lines[0] and "sub-C/sub-C_ses-0_ecephys.nwb ->" in lines[4]
    assert "3/6 finished (3 done, 0 failed, 0 skipped)" in lines[1] and lines[1].endswith(
        "about 60 s left (from the mean time per subject's model)")
    assert "5/6 finished" in lines[3] and lines[3].endswith("about 30 s left (from the mean time per subject's model)")
    assert "6/6 finished" in lines[5] and lines[5].endswith("nothing left to run")
    assert result.count("done") == 6


# ---- settings: only what decides the results


def test_execution_settings_do_not_make_a_rerun_other_settings(folder, tmp_path):
    from nwb_autolfads.batch import _write_manifest

    out = tmp_path / "out"
    out.mkdir()
    inputs = sorted(folder.glob("sub-B/*_ecephys.nwb"))
    _write_manifest(plan_batch(inputs, out, preset="smoke", overrides={"train.threads": 1}), None, None)
    execution = {"train.threads": 2, "pbt.workers": 3, "pbt.execution": "sequential", "train.cuda_graphs": False}
    assert plan_batch(inputs, out, preset="smoke", overrides=execution).todo()
    with pytest.raises(ConfigError, match=r"other settings \(train.lr: 0.004 -> 0.001; it ran with"):
        plan_batch(inputs, out, preset="smoke", overrides={**execution, "train.lr": 0.001})
    legacy = json.loads((out / MANIFEST).read_text())  # an earlier version's manifest: the options compared
    legacy.pop("resolved")
    (out / MANIFEST).write_text(json.dumps(legacy))
    assert plan_batch(inputs, out, preset="smoke", overrides=execution).todo()
    with pytest.raises(ConfigError, match="overrides.train.lr: .not set. -> 0.001"):
        plan_batch(inputs, out, preset="smoke", overrides={"train.lr": 0.001})


def test_the_plan_shows_the_preset_the_budget_and_the_time_per_input(folder, tmp_path):
    out = tmp_path / "out"
    text = plan_batch([folder], out, preset="smoke").format()
    assert ("  training    preset smoke: a population of 2 members x at most 2 generations x 10 steps (= 20 steps "
            "per member) per model\n") in text
    assert "preset quick: 1 model (no population), at most 2000 steps" in plan_batch([folder], out,
                                                                                     preset="quick").format()
    assert "preset default: a population of 20 members" in plan_batch([folder], out).format()
    _fake_done(plan_batch([folder], out, preset="smoke"), seconds=30.0)
    mock_emg_nwb(folder / "sub-A" / "sub-A_ses-1_ecephys.nwb", duration=1.0, rate=500.0, n_muscles=2, seed=7)
    text = plan_batch([folder], out, preset="smoke", overwrite=True).format()
    assert "~30 s per input in earlier runs of this batch (mean of 2)" in text and "time        about 30 s left" in text


def test_a_manifest_without_a_setting_added_since_reads_it_as_its_default(folder, tmp_path):
    """An earlier version's manifest has no ``model.min_factors``: the same batch continues; a batch
    with another value of it is refused, naming it."""
    from nwb_autolfads.batch import _write_manifest

    out = tmp_path / "out"
    out.mkdir()
    inputs = sorted(folder.glob("sub-B/*_ecephys.nwb"))
    _write_manifest(plan_batch(inputs, out, preset="smoke"), None, None)
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["resolved"]["model"]["min_factors"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert plan_batch(inputs, out, preset="smoke").todo()
    with pytest.raises(ConfigError, match=r"other settings \(model.min_factors: 2 -> 8"):
        plan_batch(inputs, out, preset="smoke", overrides={"model.min_factors": 8})


def test_a_subset_rerun_with_other_settings_marks_the_other_results_outdated(tmp_path):
    """A tester's report: ``run "in/a*.nwb" --set preprocess.highpass_hz=30 --overwrite`` on a
    folder made with the default settings wrote the new settings into the manifest, so that the
    next run of the whole folder with them counted b's old result (65 Hz) as done."""
    from nwb_autolfads.batch import _write_manifest

    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    for n, name in enumerate(("a", "b")):
        mock_emg_nwb(data / f"{name}.nwb", duration=1.0, rate=500.0, n_muscles=2, seed=n)
    _fake_done(plan_batch([data], out, preset="smoke"))
    thirty = {"preprocess.highpass_hz": 30.0}
    subset = plan_batch([str(data / "a*.nwb")], out, preset="smoke", overrides=thirty, overwrite=True)
    assert [i.name for i in subset.items] == ["a.nwb"]
    previous = json.loads((out / MANIFEST).read_text())
    _fake_done(subset)  # as a run of the subset writes it
    _write_manifest(subset, previous, None)
    rows = {r["name"]: r for r in json.loads((out / MANIFEST).read_text())["assets"]}
    assert rows["a.nwb"]["status"] == "done"
    assert rows["b.nwb"]["status"] == "outdated" and "preprocess.highpass_hz: 65.0 -> 30.0" in rows["b.nwb"]["reason"]
    state = _states(plan_batch([data], out, preset="smoke", overrides=thirty))
    assert state["a.nwb"] == ("done", "")
    assert state["b.nwb"][0] == "kept" and state["b.nwb"][1].startswith("made with other settings (preprocess.highpass_hz")
    assert state["b.nwb"][1].endswith(KEPT)
    _write_manifest(plan_batch([data], out, preset="smoke", overrides=thirty), json.loads((out / MANIFEST).read_text()),
                    None)  # as that run writes it: b stays out of date, however often the batch runs
    again = _states(plan_batch([data], out, preset="smoke", overrides=thirty))
    assert again == state and again["b.nwb"][1].count(KEPT) == 1
    assert _states(plan_batch([data], out, preset="smoke", overrides=thirty, overwrite=True))["b.nwb"][0] == "pending"


def test_an_output_written_before_the_manifest_recorded_it_counts_done(folder, tmp_path):
    """A tester's report: SIGTERM to a batch with --jobs 2 right after two jobs wrote their outputs
    left their rows "started"; the rerun kept them as "run again ... pass --overwrite" (training
    again), and the next said "its output is missing or changed"."""
    from nwb_autolfads.batch import _record, _write_manifest
    from nwb_autolfads.io.writing import file_sha256, write_results
    from nwb_autolfads.testing import mock_run_record

    out = tmp_path / "out"
    plan = plan_batch([folder], out, preset="smoke")
    items = [i for i in plan.items if i.status != "skipped"]
    for item in items:
        _record(item, {"status": "started", "started": "2026-12-03T00:00:00+00:00"})
    record = mock_run_record()
    record.source_sha256 = file_sha256(items[0].input)
    (out / items[0].output).parent.mkdir(parents=True, exist_ok=True)
    write_results(items[0].input, out / items[0].output, record)  # the job's output, complete
    (out / items[1].output).parent.mkdir(parents=True, exist_ok=True)
    write_results(items[1].input, out / items[1].output, mock_run_record())  # another input's (sha 000...)
    _write_manifest(plan, None, None)
    again = {i.name: (i.status, i.earlier) for i in plan_batch([folder], out, preset="smoke").items
             if i.status != "skipped"}
    assert again[items[0].name] == ("done", True)
    assert again[items[1].name][0] == "kept"  # not made from this input: kept, never counted done
