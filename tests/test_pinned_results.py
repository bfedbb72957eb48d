"""A fixed seed gives the pinned results (tests/data/pinned/pinned.json, built by make_pinned.py)
for the vector instructions this machine's torch kernels use (pins per ATen CPU capability: an
AVX2-only machine gives other last bits than an AVX-512 one for the same seed): bit for bit on
the machine that built them (same CPU model and flags, same torch/numpy/scipy), within 1e-4 of
each array's scale elsewhere (another CPU model changes last bits too)."""
import importlib.util
from pathlib import Path

import pytest

_DIR = Path(__file__).parent / "data" / "pinned"
_spec = importlib.util.spec_from_file_location("make_pinned", _DIR / "make_pinned.py")
make_pinned = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_pinned)
PINNED = make_pinned.load()
BUILT_ON = make_pinned.built_on()


@pytest.mark.parametrize("case", sorted(make_pinned.CASES))
def test_a_fixed_seed_gives_the_pinned_results(case, tmp_path):
    capability = make_pinned.cpu_capability()
    if capability not in PINNED:
        pytest.skip(f"no pins for torch's CPU capability {capability} (pinned: {', '.join(PINNED)}); "
                    "build them with python tests/data/pinned/make_pinned.py on such a machine")
    want_case = PINNED[capability][case]
    got = make_pinned.compute_case(case, tmp_path)
    assert sorted(got) == sorted(want_case)
    same_machine = BUILT_ON.get(capability) == make_pinned.machine_fingerprint()
    for key, want in want_case.items():
        assert got[key]["shape"] == want["shape"], key
        if same_machine:
            # bit-identical: a change here means the draws or the arithmetic changed; rebuild the
            # pins on purpose (python tests/data/pinned/make_pinned.py) and say why in the commit
            assert got[key]["sha256"] == want["sha256"], (capability, key, got[key]["first"], want["first"])
        else:  # another CPU model: last bits differ, the numbers may not
            assert make_pinned.close_to(got[key], want), (capability, key, got[key]["summary"], want["summary"])


def test_the_tolerance_off_the_pinning_machine_passes_last_bits_and_fails_a_changed_seed(tmp_path):
    """close_to (used where the pins were built on another machine) passes a run's last-bit
    differences and fails what another seed gives."""
    import numpy as np

    a = np.linspace(-0.2, 0.3, 4800).reshape(1200, 4)
    pin = {"shape": [1200, 4], "summary": make_pinned.summary(a)}
    assert make_pinned.close_to({"shape": [1200, 4], "summary": make_pinned.summary(a * (1 + 1e-6))}, pin)
    assert not make_pinned.close_to({"shape": [1200, 4], "summary": make_pinned.summary(a[::-1])}, pin)
    assert not make_pinned.close_to({"shape": [1200, 3], "summary": pin["summary"]}, pin)
    capability = make_pinned.cpu_capability()
    if capability not in PINNED:
        pytest.skip(f"no pins for torch's CPU capability {capability}")
    want = PINNED[capability]["emg_population"]["activations"]
    other_seed = make_pinned.compute_case("emg_population", tmp_path, seed=12)["activations"]
    assert not make_pinned.close_to(other_seed, want)


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
    capability, got, machine = make_pinned._compute_with("avx2")  # what make_pinned.py builds the pins with
    if capability != "x86_64:AVX2":
        pytest.skip(f"this CPU cannot run AVX2 kernels (torch used {capability})")
    if machine == BUILT_ON.get(capability):
        assert got == PINNED["x86_64:AVX2"]
    else:
        for case, arrays in PINNED["x86_64:AVX2"].items():
            assert all(make_pinned.close_to(got[case][key], pin) for key, pin in arrays.items()), case
    avx512 = PINNED["x86_64:AVX512"]["emg_and_spikes"]["activations"]["sha256"]
    assert got["emg_and_spikes"]["activations"]["sha256"] != avx512
