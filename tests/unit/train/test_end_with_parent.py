"""Worker processes (a batch's --jobs, a run's PBT workers) end when their parent is killed."""

import os
import signal
import subprocess
import sys
import time

_PARENT = """
import multiprocessing, sys, time

def child(grace):
    import os, time
    from nwb_autolfads.train.resources import end_with_parent
    started = end_with_parent(grace)
    print(f"{os.getpid()} {started}", flush=True)
    while True:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:  # the watch interrupts first, then exits for good after the grace
            while True:
                time.sleep(0.05)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=child, args=(float(sys.argv[1]),))
    proc.start()
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_a_worker_ends_after_its_parent_is_killed(tmp_path):
    from nwb_autolfads.train.resources import end_with_parent

    assert end_with_parent() is False  # the main process: nothing to watch
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script), "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        pid, started = parent.stdout.readline().split()
        assert started == "True"
        os.kill(parent.pid, signal.SIGKILL)  # no cleanup at all
        parent.wait()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and _alive(int(pid)):
            time.sleep(0.1)
        if _alive(int(pid)):
            os.kill(int(pid), signal.SIGKILL)
            raise AssertionError("the worker outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
