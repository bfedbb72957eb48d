"""TrainingData of several sessions (from_sessions): padding, masks, session indices."""

import pytest
import torch

from nwb_autolfads.model.observations import Composite, Gamma, Poisson
from nwb_autolfads.testing import gamma_session_windows
from nwb_autolfads.train.training_data import TrainingData


def _two():
    a, b = gamma_session_windows((3, 5), n=10, T=12)
    return TrainingData.from_sessions([a[:7], b[:6]], [a[7:], b[6:]], Gamma(), ["day1", "day2"]), a, b


def test_from_sessions_pads_masks_and_indexes_the_windows():
    data, a, b = _two()
    assert data.train.shape == (13, 12, 5) and data.valid.shape == (7, 12, 5)
    assert data.n_sessions == 2 and data.session_names == ("day1", "day2") and data.session_channels == (3, 5)
    assert data.model_sessions == (3, 5)
    assert data.train_session.tolist() == [0] * 7 + [1] * 6 and data.valid_session.tolist() == [0] * 3 + [1] * 4
    assert data.train_session.dtype == torch.int64
    assert torch.equal(data.train[:7, :, :3], a[:7]) and torch.equal(data.train[7:], b[:6])
    assert torch.equal(data.valid[:3, :, :3], a[7:]) and torch.equal(data.valid[3:], b[6:])
    assert (data.train[:7, :, 3:] == 0).all() and (data.valid[:3, :, 3:] == 0).all()  # zero padding
    for mask, n_first in ((data.train_mask, 7), (data.valid_mask, 3)):
        assert (mask[:n_first, :, :3] == 1).all() and (mask[:n_first, :, 3:] == 0).all() and (mask[n_first:] == 1).all()


def test_one_session_is_the_plain_single_session_data():
    (a,) = gamma_session_windows((4,), n=10)
    data = TrainingData.from_sessions([a[:8]], [a[8:]], Gamma(), ["only"])
    assert data.train_mask is None and data.valid_mask is None
    assert data.train_session is None and data.valid_session is None
    assert data.n_sessions == 1 and data.model_sessions is None and data.session == "only"
    assert torch.equal(data.train, a[:8])
    assert len(data.fingerprint_parts()) == 2  # as before sessions existed: old checkpoints still resume


@pytest.mark.parametrize("case, match", [
    ("bins", "same bins"), ("names", "repeat"), ("count", "for 3 session names"), ("empty", "need"),
    ("composite", "same channels in every session")])
def test_from_sessions_refuses_what_it_cannot_join(case, match):
    a, b = gamma_session_windows((3, 5), n=10, T=12)
    obs, names, tr, va = Gamma(), ["a", "b"], [a[:7], b[:6]], [a[7:], b[6:]]
    if case == "bins":
        tr, va = [a[:7], b[:6, :10]], [a[7:], b[6:, :10]]
    elif case == "names":
        names = ["a", "a"]
    elif case == "count":
        names = ["a", "b", "c"]
    elif case == "empty":
        tr = [a[:0], b[:6]]
    else:
        obs = Composite([(Poisson(), 1), (Gamma(), 2)])
    with pytest.raises(ValueError, match=match):
        TrainingData.from_sessions(tr, va, obs, names)


def test_session_fields_are_checked():
    data, _, _ = _two()
    with pytest.raises(ValueError, match="outside 0..1"):
        TrainingData(data.train, data.valid, Gamma(), train_session=data.train_session + 1,
                     valid_session=data.valid_session, session_names=("a", "b"), session_channels=(3, 5))
    with pytest.raises(ValueError, match="exactly when there are several sessions"):
        TrainingData(data.train, data.valid, Gamma(), session_names=("a", "b"), session_channels=(3, 5))
    with pytest.raises(ValueError, match="must name each session"):
        TrainingData(data.train, data.valid, Gamma(), train_session=data.train_session,
                     valid_session=data.valid_session, session_names=("a", "b"), session_channels=(3, 6))


def test_masks_with_hidden_elements_are_accepted():
    x = torch.rand(6, 5, 2) + 0.1
    mask = torch.ones_like(x)
    mask[0, 0, 0] = 0
    assert TrainingData(x, x, Gamma(), train_mask=mask, valid_mask=mask).train_mask is mask


def test_validation_subset_to_and_fingerprint_carry_the_sessions():
    data, _, _ = _two()
    sub = data.validation_subset(3)
    assert sub.valid.shape[0] == 3 and sub.valid_session.tolist() == [0, 1, 1]  # windows 0, 3, 6
    assert torch.equal(sub.valid_mask, data.valid_mask[[0, 3, 6]])
    moved = data.cpu()
    assert torch.equal(moved.train_session, data.train_session) and moved.session_channels == (3, 5)
    other = TrainingData.from_sessions([data.train[:7, :, :3]], [data.valid[:3, :, :3]], Gamma(), ["x"])
    parts = data.fingerprint_parts()
    assert len(parts) == 8 and parts[-1] == [3, 5] and parts[-2] == ["day1", "day2"]
    assert len(other.fingerprint_parts()) == 2
