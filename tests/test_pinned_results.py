"""A fixed seed gives the pinned results (tests/data/pinned/pinned.json, built by make_pinned.py),
bit for bit, for the vector instructions this machine's torch kernels use (pins per ATen CPU
capability: an AVX2-only machine gives other last bits than an AVX-512 one for the same seed)."""
import importlib.util
from pathlib import Path

import pytest

_DIR = Path(__file__).parent / "data" / "pinned"
_spec = importlib.util.spec_from_file_location("make_pinned", _DIR / "make_pinned.py")
make_pinned = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_pinned)
PINNED = make_pinned.load()


@pytest.mark.parametrize("case", sorted(make_pinned.CASES))
def test_a_fixed_seed_gives_the_pinned_results(case, tmp_path):
    capability = make_pinned.cpu_capability()
    if capability not in PINNED:
        pytest.skip(f"no pins for torch's CPU capability {capability} (pinned: {', '.join(PINNED)}); "
                    "build them with python tests/data/pinned/make_pinned.py on such a machine")
    want_case = PINNED[capability][case]
    got = make_pinned.compute_case(case, tmp_path)
    assert sorted(got) == sorted(want_case)
    for key, want in want_case.items():
        assert got[key]["shape"] == want["shape"], key
        # bit-identical: a change here means the draws or the arithmetic changed; rebuild the pins
        # on purpose (python tests/data/pinned/make_pinned.py) and say why in the commit
        assert got[key]["sha256"] == want["sha256"], (capability, key, got[key]["first"], want["first"])


def test_the_pins_cover_every_x86_capability_and_agree_where_it_cannot_matter():
    """Every capability is pinned for every case, and they differ only in last bits: the values
    shown agree to 1e-4 relative across capabilities (float32 rounding through training: 4e-6
    seen; a changed seed or default moves them far)."""
    assert set(PINNED) == {f"x86_64:{c.upper()}" for c in make_pinned.CAPABILITIES}
    ref = PINNED["x86_64:AVX512"]
    for cap, pins in PINNED.items():
        assert sorted(pins) == sorted(make_pinned.CASES), cap
        for case, arrays in pins.items():
            assert sorted(arrays) == sorted(ref[case]), (cap, case)
            for key, pin in arrays.items():
                assert pin["shape"] == ref[case][key]["shape"]
                assert pin["first"] == pytest.approx(ref[case][key]["first"], rel=1e-4, abs=1e-9), (cap, case, key)


def test_another_capability_gives_its_own_pins():
    """The mechanism that made an AVX2 CI machine fail the AVX-512 pins: a process started with
    ATEN_CPU_CAPABILITY=avx2 computes the AVX2 pins, not the AVX-512 ones (where the CPU has AVX2)."""
    capability, got = make_pinned._compute_with("avx2")  # what make_pinned.py builds the pins with
    if capability != "x86_64:AVX2":
        pytest.skip(f"this CPU cannot run AVX2 kernels (torch used {capability})")
    assert got == PINNED["x86_64:AVX2"]
    avx512 = PINNED["x86_64:AVX512"]["emg_and_spikes"]["activations"]["sha256"]
    assert got["emg_and_spikes"]["activations"]["sha256"] != avx512
