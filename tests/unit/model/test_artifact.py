"""The saved model folder (nwb_autolfads.model.artifact): written atomically, read back without
pickles, checked against its recorded SHA-256."""

import json

import numpy as np
import pytest
import torch

from nwb_autolfads.config import build_config
from nwb_autolfads.errors import ConfigError, OutputError
from nwb_autolfads.model.artifact import (META, WEIGHTS, check_model_path, load_model, model_path_for, stage_model)
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import get_observation


def _model(n_channels=3):
    cfg = build_config("smoke").resolved(n_channels)
    torch.manual_seed(0)
    return LFADS(n_channels, cfg.model, get_observation(cfg.model.observation)), cfg


def _meta(cfg, names=("TA", "MG", "LG")):
    return {"config": cfg.to_dict(), "bin_size": 0.01,
            "columns": [{"modality": "emg", "observation": cfg.model.observation, "channel_names": list(names),
                         "offsets": None, "scales": np.array([1.5, 2.0, 0.25]),
                         "clip_levels": np.array([3.0, np.inf, 1.0])}]}


def test_a_saved_model_reloads_with_the_same_weights_and_outputs(tmp_path):
    model, cfg = _model()
    target = model_path_for(tmp_path / "x.nwb")
    assert target.name == "x.autolfads-model"
    staged = stage_model(target, model)
    assert not target.exists()  # nothing in place before the commit
    staged.commit(_meta(cfg))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.autolfads-model"]  # no temporary folder left
    art = load_model(target)
    assert art.sha256 == staged.sha256 == json.loads((target / META).read_text())["weights_sha256"]
    rebuilt = art.build("cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    x = torch.rand(2, cfg.windows.window_bins, 3) + 0.1
    model.eval()
    assert torch.equal(model(x, sample=False).params, rebuilt(x, sample=False).params)
    clip, scales = art.scaling("emg")
    assert np.array_equal(scales, [1.5, 2.0, 0.25]) and clip[1] == np.inf and clip[0] == 3.0
    assert art.scaling("spikes") is None
    assert load_model(target / META).sha256 == art.sha256  # the model.json names its folder too


def test_a_model_added_to_a_file_with_other_runs_is_named_after_its_run(tmp_path):
    assert model_path_for(tmp_path / "x.nwb", "second").name == "x.second.autolfads-model"
    assert model_path_for(tmp_path / "x.nwb", None).name == "x.autolfads-model"


def test_the_same_weights_give_the_same_file_in_another_process(tmp_path):
    # the model's identity is its file's SHA-256: a resumed run must reproduce it
    import subprocess
    import sys

    code = ("import sys, torch; from nwb_autolfads.config import build_config; "
            "from nwb_autolfads.model.lfads import LFADS; "
            "from nwb_autolfads.model.observations import get_observation; "
            "from nwb_autolfads.model.artifact import stage_model; cfg = build_config('smoke').resolved(3); "
            "torch.manual_seed(0); model = LFADS(3, cfg.model, get_observation(cfg.model.observation)); "
            "print(stage_model(sys.argv[1], model).sha256)")
    shas = {subprocess.run([sys.executable, "-c", code, str(tmp_path / f"m{k}.autolfads-model")], check=True,
                           capture_output=True, text=True).stdout.strip() for k in range(3)}
    assert len(shas) == 1 and len(shas.pop()) == 64


def test_changed_weights_or_a_newer_format_or_no_folder_are_refused(tmp_path):
    model, cfg = _model()
    target = tmp_path / "m.autolfads-model"
    stage_model(target, model).commit(_meta(cfg))
    with pytest.raises(ConfigError, match="not a model folder"):
        load_model(tmp_path / "missing.autolfads-model")
    meta = json.loads((target / META).read_text())
    (target / META).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ConfigError, match="newer"):
        load_model(target)
    (target / META).write_text(json.dumps(meta))
    data = bytearray((target / WEIGHTS).read_bytes())
    data[-1] ^= 1
    (target / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="SHA-256"):
        load_model(target)


def test_an_existing_model_is_replaced_only_with_overwrite(tmp_path):
    model, cfg = _model()
    target = tmp_path / "m.autolfads-model"
    stage_model(target, model).commit(_meta(cfg))
    with pytest.raises(OutputError, match="already exists"):
        check_model_path(target, overwrite=False)
    assert check_model_path(target, overwrite=True) == target
    staged = stage_model(target, model)
    with pytest.raises(OutputError, match="already exists"):
        staged.commit(_meta(cfg), overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.autolfads-model"]  # the staged copy was removed
    stage_model(target, model).commit(_meta(cfg, names=("a", "b", "c")), overwrite=True)
    assert load_model(target).columns[0]["channel_names"] == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.autolfads-model"]


def _edit(key, value):
    def edit(meta):
        col = meta["columns"][0]
        (col if key in col else meta)[key] = value
        return meta
    return edit


def _drop(key):
    def edit(meta):
        meta.pop(key)
        return meta
    return edit


@pytest.mark.parametrize("edit", [
    _edit("scales", ["x", 2.0, 0.25]), _edit("scales", [1.5, 2.0]), _edit("scales", [-1.0, 2.0, 0.25]),
    _edit("clip_levels", [3.0, "inf", 1.0]), _edit("channel_names", ["TA", "TA", "LG"]), _drop("columns"),
    _drop("config"), _drop("bin_size"), _edit("bin_size", "0.01"), _edit("observation", "nonesuch"),
    _edit("n_channels", 5), _edit("modalities", ["emg", "spikes"]), _edit("columns", [1, 2]),
    lambda meta: [1, 2], lambda meta: {**meta, "config": {**meta["config"], "windows": "x"}},
    lambda meta: {**meta, "columns": [{**meta["columns"][0], "fit": [0.9, "x", None]}]},
], ids=["scale_str", "scales_short", "scale_neg", "clip_str", "dup_names", "no_columns", "no_config", "no_bin",
        "bin_str", "observation", "n_channels", "modalities", "columns_not_objects", "a_list", "config_bad",
        "fit_not_numbers"])
def test_a_damaged_model_json_is_one_line_naming_the_folder_damaged(tmp_path, edit):
    model, cfg = _model()
    target = tmp_path / "m.autolfads-model"
    stage_model(target, model).commit({**_meta(cfg), "modalities": ["emg"], "n_channels": 3})
    load_model(target)  # intact: loads
    (target / META).write_text(json.dumps(edit(json.loads((target / META).read_text()))))
    with pytest.raises(ConfigError, match="is damaged or not a model folder of this version") as info:
        load_model(target)
    assert len(str(info.value).splitlines()) == 1 and "m.autolfads-model" in str(info.value)
    (target / META).write_text("{\"format\": ")  # cut short: the same error
    with pytest.raises(ConfigError, match="is damaged or not a model folder of this version"):
        load_model(target)


def test_overwrite_never_replaces_a_folder_that_is_not_a_model(tmp_path):
    """A tester's report: --overwrite replaced a user's folder named like the model folder (it held
    notes.txt only) by the new model."""
    target = tmp_path / "x.autolfads-model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not a saved model .*notes.txt"):
        check_model_path(target, overwrite=True)
    (target / "notes.txt").unlink()
    (target / WEIGHTS).write_bytes(b"weights only")
    with pytest.raises(OutputError, match=f"no {META}"):
        check_model_path(target, overwrite=True)
    (target / META).write_text('{"mine": 1}')  # a user's own model.json
    with pytest.raises(OutputError, match="is not a saved model"):
        check_model_path(target, overwrite=True)
    (target / META).write_text('{"format": "nwb-autolfads-model"}')
    assert check_model_path(target, overwrite=True) == target  # an earlier model: replaced with --overwrite
