"""The plan printed before training: budget, execution and the expected time (nwb_autolfads.plan)."""
import pytest


def test_the_plan_states_members_steps_windows_and_an_estimate():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.plan import WORKER_START_SECONDS, training_plan

    cpu = torch.device("cpu")
    one = training_plan(build_config("quick"), 1200, 300, cpu, (0.035, 0.02))
    assert one["steps_per_member"] == 2000 and one["n_valid_checked"] == 256
    assert one["expected_training_seconds_at_most"] == pytest.approx(2000 * 0.035 + 200 * 0.02)
    assert "1 model, at most 2000 steps" in one["text"] and "an estimate" in one["text"]
    assert "1200 training / 300 validation (256 evaluated every 10 steps)" in one["text"]
    pop = training_plan(build_config("default", overrides={"pbt.workers": 2, "pbt.execution": "processes"}), 120, 30,
                        cpu, (0.05, 0.02))
    assert pop["steps_per_member"] == 4000 and pop["members"] == 20
    assert "20 members x at most 40 generations x 100 steps" in pop["text"] and "2 worker processes" in pop["text"]
    assert pop["expected_training_seconds_at_most"] == pytest.approx(10 * 40 * (100 * 0.05 + 10 * 0.02) + WORKER_START_SECONDS)
    assert "  execution processes: 2 worker processes x 1 thread" in pop["text"]


def test_the_plan_of_a_stacked_population_uses_the_stacked_step_time():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.plan import training_plan
    from nwb_autolfads.train.resources import Execution

    cpu = torch.device("cpu")
    cfg = build_config("default")
    stacked = Execution("stacked", 1, 1, "20 members of 64-unit layers as one stacked program on 1 thread")
    timed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), stacked, stacked_timing=(0.25, 0.1))
    # 40 generations x (100 steps of all 20 members at 0.25 s + 10 checks of all of them at 0.1 s)
    assert timed["expected_training_seconds_at_most"] == pytest.approx(40 * (100 * 0.25 + 10 * 0.1))
    assert timed["seconds_per_stacked_step"] == 0.25 and timed["execution"].startswith("stacked")
    assert "  execution stacked: 1 process, 1 thread" in timed["text"]
    assert "one stacked program: 250 ms per step of all of them" in timed["text"] and "4.0x faster" in timed["text"]
    # not timed: no stacking gain assumed, and said so
    untimed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), stacked)
    assert untimed["expected_training_seconds_at_most"] == pytest.approx(20 * 40 * (100 * 0.05 + 10 * 0.02))
    assert "no stacking gain assumed" in untimed["text"]


def test_the_plan_of_a_split_stacked_population_times_one_block_and_runs_the_workers_in_parallel():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.plan import WORKER_START_SECONDS, stacked_share, training_plan
    from nwb_autolfads.train.resources import choose_execution

    cpu = torch.device("cpu")
    cfg = build_config("default")  # 20 members of a small model
    split = choose_execution(20, cfg.model, 16, "cpu", cores=2)
    assert split.mode == "stacked-processes" and stacked_share(20, split) == 10
    assert stacked_share(5, choose_execution(5, cfg.model, 16, "cpu", cores=2)) == 3  # the larger block (2 | 3)
    timed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), split, stacked_timing=(0.2, 0.1))
    # the 2 workers in parallel: 40 generations x (100 steps of a 10-member block at 0.2 s + 10 checks at 0.1 s)
    assert timed["expected_training_seconds_at_most"] == pytest.approx(40 * (100 * 0.2 + 10 * 0.1)
                                                                       + WORKER_START_SECONDS)
    assert timed["members_per_worker"] == 10 and timed["seconds_per_stacked_step"] == 0.2
    assert "  execution stacked-processes: 2 worker processes x 1 thread, each training a block" in timed["text"]
    assert ("20 members in 2 worker processes in parallel, each a block of at most 10 members as one stacked "
            "program: 200 ms per step of a block") in timed["text"] and "2.5x faster" in timed["text"]
    untimed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), split)
    assert untimed["expected_training_seconds_at_most"] == pytest.approx(10 * 40 * (100 * 0.05 + 10 * 0.02)
                                                                         + WORKER_START_SECONDS)
