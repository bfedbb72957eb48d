import torch

from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.config import ModelConfig
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma


def test_coordinated_dropout_masks_and_scales():
    torch.manual_seed(0)
    x = torch.ones(64, 50, 8)
    enc_in, mask = CoordinatedDropout(0.3)(x)
    visible = mask == 0
    assert abs(float(mask.mean()) - 0.3) < 0.02
    torch.testing.assert_close(enc_in[visible], torch.full_like(enc_in[visible], 1 / 0.7))
    assert torch.all(enc_in[~visible] == 0)


def test_coordinated_dropout_off():
    x = torch.rand(2, 5, 3)
    enc_in, mask = CoordinatedDropout(0.0)(x)
    assert enc_in is x and torch.all(mask == 1)


def test_cd_blocks_the_gradient_of_visible_elements():
    """The loss reaches the model only through the elements the encoder did not see."""
    torch.manual_seed(0)
    cfg = ModelConfig(ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=1, ic_dim=4, gen_dim=8, factor_dim=2,
                      dropout=0.0)
    model = LFADS(3, cfg, Gamma())
    x = torch.rand(2, 6, 3) + 0.1
    enc_in, mask = CoordinatedDropout(0.5)(x)
    out = model(enc_in, sample=False)
    params = out.params.detach().requires_grad_(True)
    nll = model.observation.nll(params, x)
    ((nll * mask).sum() / mask.sum()).backward()
    grad = params.grad.abs().sum(-1)  # (B, T, C)
    assert torch.all(grad[mask == 0] == 0)
    assert torch.all(grad[mask == 1] > 0)


def test_temporal_shift_moves_whole_channels_with_edge_padding():
    torch.manual_seed(0)
    T = 20
    x = torch.arange(T, dtype=torch.float32).view(1, T, 1).repeat(64, 1, 4)
    y = TemporalShift(std=2.0, max_shift=3)(x)
    shifts = x[:, 5, :] - y[:, 5, :]  # interior bin: value t - s
    assert shifts.abs().max() <= 3 and (shifts != 0).any()
    # the same shift applies to every interior bin of a channel
    torch.testing.assert_close(x[:, 3:T - 3] - y[:, 3:T - 3], shifts[:, None, :].expand(-1, T - 6, -1))
    # edges repeat the end values
    assert torch.all(y[:, 0] >= 0) and torch.all(y[:, -1] <= T - 1)
    # channels shift independently
    assert (shifts[:, 0] != shifts[:, 1]).any()


def test_temporal_shift_draws_independently_per_call_and_is_off_when_disabled():
    torch.manual_seed(0)
    x = torch.rand(32, 10, 4)
    shift = TemporalShift(2.0, 3)
    assert not torch.equal(shift(x), shift(x))
    assert TemporalShift(0.0, 3)(x) is x and not TemporalShift(0.0, 3).active
