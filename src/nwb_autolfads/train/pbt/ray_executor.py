"""Population-based training on Ray Tune (``pbt.backend: ray``; ``pip install "nwb-autolfads[ray]"``).

The same algorithm as :func:`nwb_autolfads.train.pbt.embedded.train_population`, run by Ray Tune so the
population spreads over a cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others, then ``nwb-autolfads run ... --backend ray --ray-address
HEAD:6379``). Without an address a private local Ray instance is started, bound to 127.0.0.1.

- Every member is a Tune trial (one CPU, or one GPU when ``pbt.ray_gpus_per_member`` > 0)
  that trains one generation of ``generation_steps`` optimisation steps and reports its smoothed
  validation NLL with a checkpoint (weights, optimizer state, steps, history).
- :class:`TournamentPBT`, a subclass of Tune's synchronous ``PopulationBasedTraining``
  scheduler, replaces its quantile rule with our binary tournament (:func:`~nwb_autolfads.train.pbt.embedded.
  tournament`) and its explore step with ours (:func:`~nwb_autolfads.train.pbt.embedded.explore`: per-
  hyperparameter weights and bounds), drawing from the same random generator in the same order
  as the embedded executor. Initial weights and hyperparameters are drawn in the driver exactly as
  the embedded executor draws them, and every member-generation trains with the same seed, so on
  one machine both backends give the same population history.
- :class:`GenerationStopper` applies the stopping rule (:func:`~nwb_autolfads.train.pbt.embedded.should_stop`)
  and the generation cap; the best member-generation ever seen is copied out of Tune's storage
  as it appears, and is the result.

Tune stores its experiment under ``<rundir>/ray`` (or a temporary directory). After every
generation the scheduler also saves, in ``<rundir>/ray_resume``, every member's state and
hyperparameters, the history and the random generator: the same call again (``--resume``, or
rerunning the command) continues with the next generation and ends with the result of an
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, PBTConfig, TrainConfig, configured_hyperparameters
from nwb_autolfads.errors import ConfigError, TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.pbt.embedded import Member, _fingerprint, _member_seed, _to_cpu, _train_generation, explore, initial_hyperparameters, lineage, \
    should_stop, tournament
from nwb_autolfads.train.loop import TrainResult, load_checkpoint, validation_subset

__all__ = ["train_population_ray"]

STATE_FILE = "member.pt"
RESUME_FILE = "pbt_ray_state.pt"


def _import_ray():
    import logging
    import os

    # quiet: no TensorBoard/CSV loggers or Tune's console reporter (our progress bar reports)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import ray
        from ray import tune
    except ImportError as exc:  # pragma: no cover - exercised where ray is missing
        raise ConfigError("pbt.backend 'ray' needs Ray Tune: pip install \"nwb-autolfads[ray]\" (or use the default "
                          f"embedded backend) ({exc})") from None
    return ray, tune


# ------------------------------------------------------------------------------- the trial
def _member_trainable(config: dict, data: dict) -> None:
    """One member: trains a generation at a time, reporting the metric with a checkpoint."""
    from ray import tune

    torch.set_num_threads(max(1, int(data["threads"])))
    device = torch.device("cuda" if data["gpu"] and torch.cuda.is_available() else "cpu")
    model = LFADS(data["n_channels"], data["model_cfg"], data["observation"]).to(device)
    hp = {k: float(config[k]) for k in data["hp_names"]}
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], eps=data["train_cfg"].adam_eps)
    member = Member(model, opt, dict(hp))
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location=device, weights_only=False)
        generation = state.pop("generation")
        member.load(state)
    elif data.get("start_states"):  # a resumed run: the member as the last completed generation left it
        state = dict(data["start_states"][int(config["member"])])
        generation = state.pop("generation")
        member.load(state)
    else:  # generation 0: the weights the driver drew for this member
        model.load_state_dict(data["initial_weights"][int(config["member"])])
        generation = 0
    member.hp = dict(hp)  # after an exploit: the explored hyperparameters of the new config
    member.apply()
    train_x, valid_x = data["train_x"].to(device), data["valid_x"].to(device)
    while True:
        _train_generation(member, train_x, valid_x, data["train_cfg"], data["aug"], data["generation_steps"],
                          generation, _member_seed(data["seed"], generation, int(config["member"])))
        generation += 1
        with tempfile.TemporaryDirectory() as d:
            torch.save({**_to_cpu(member.state()), "generation": generation}, Path(d) / STATE_FILE)
            metric = member.smoothed if math.isfinite(member.smoothed) else float("inf")
            tune.report({"metric": metric, "generation": generation - 1, "steps": member.steps},
                        checkpoint=tune.Checkpoint.from_directory(d))


# ------------------------------------------------------------------------------- scheduler
def _scheduler_class():
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pbt import _FutureTrainingResult

    class TournamentPBT(PopulationBasedTraining):
        """Synchronous PBT whose exploit step is a binary tournament and whose explore step is
        nwb-autolfads' bounded multiplicative perturbation (see the module docstring)."""

        def __init__(self, ranges, rng: np.random.Generator, best_dir: Path, pbt: PBTConfig, on_generation=None,
                     resume_dir: Path | None = None, fingerprint: str = "", **kwargs):
            super().__init__(time_attr="training_iteration", metric="metric", mode="min", perturbation_interval=1,
                             synch=True, hyperparam_mutations={k: [r.low, r.high] for k, r in ranges.items()},
                             log_config=False, **kwargs)
            self.ranges, self.rng, self.best_dir, self.pbt = ranges, rng, best_dir, pbt
            self.resume_dir, self.fingerprint = resume_dir, fingerprint
            self.finished = False
            self.on_generation = on_generation
            self.rows: list[dict] = []
            self.best_per_generation: list[float] = []
            self.best: dict | None = None  # score, member, generation
            self._parents: dict = {}
            self._pending = 0
            self._generation = 0

        def _members(self):
            return sorted(self._trial_state, key=lambda t: int(t.config["member"]))

        def _quantiles(self):
            trials = self._members()
            scores = [float(self._trial_state[t].last_result["metric"]) for t in trials]
            scores = [s if math.isfinite(s) else math.nan for s in scores]
            if not any(math.isfinite(s) for s in scores):
                raise TrainingError("every member of the population diverged (NaN loss): lower pbt.lr.high or "
                                    "check the input data")
            parents = tournament(scores, self.rng)
            g = self._generation
            i_best = int(np.nanargmin(scores))
            self._parents = {t: trials[p] for t, p in zip(trials, parents) if trials[p] is not t}
            self._new_best = None
            if self.best is None or scores[i_best] < self.best["score"]:
                self.best = {"score": scores[i_best], "member": i_best, "generation": g}
                self._new_best = trials[i_best]
            self.best_per_generation.append(self.best["score"])
            for k, (t, s) in enumerate(zip(trials, scores)):
                self.rows.append({"generation": g, "member": k, **{h: float(t.config[h]) for h in self.ranges},
                                  "metric": s, "steps": int(self._trial_state[t].last_result.get("steps", 0)),
                                  "parent_member": parents[k] if parents[k] != k else -1,
                                  "parent_generation": g if parents[k] != k else -1})
            self._pending = len(self._trial_state)
            upper = list(dict.fromkeys([*self._parents.values()] + ([self._new_best] if self._new_best else [])))
            return [], upper  # the base class checkpoints these; the exploits happen below, after every save

        def _resolve(self, trial):
            state = self._trial_state[trial]
            ck = state.last_checkpoint
            if isinstance(ck, _FutureTrainingResult):
                result = ck.resolve()
                ck = result.checkpoint if result else None
                if result:
                    state.last_result = result.metrics
                state.last_checkpoint = ck
            return ck

        def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
            super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, [])
            self._pending -= 1
            if self._pending > 0:
                return
            if self._new_best is not None:  # keep the best state seen outside Tune's rotating storage
                ck = self._resolve(self._new_best)
                if ck is not None:
                    with ck.as_directory() as d:
                        shutil.copyfile(Path(d) / STATE_FILE, self.best_dir / STATE_FILE)
            for loser in self._members():  # in member order: the same draws as the embedded executor
                winner = self._parents.get(loser)
                if winner is None:
                    continue
                if self._resolve(winner) is None:
                    raise TrainingError(f"Ray Tune lost the checkpoint of member {winner.config['member']}: "
                                        "check the Ray storage path")
                self._exploit(tune_controller, loser, winner)
            if self.resume_dir is not None:
                self._save_resumable()
            if self.on_generation is not None:
                self.on_generation(self._generation, self.rows)
            self._generation += 1
            self.finished = (self._generation >= self.pbt.max_generations
                             or should_stop(self.best_per_generation, self.pbt.stop_improvement,
                                            self.pbt.stop_generations))

        def _save_resumable(self) -> None:
            """After the exploits: every member's state and hyperparameters, the history and the
            random generator, so that a rerun continues with the next generation."""
            from nwb_autolfads.train.loop import save_checkpoint

            folder = self.resume_dir / f"generation_{self._generation}"
            folder.mkdir(parents=True, exist_ok=True)
            hps = []
            for trial in self._members():
                source = self._parents.get(trial, trial)
                ck = self._resolve(source) if source in self._parents.values() else trial.checkpoint
                if ck is None:
                    return  # nothing to resume from this time; the previous generation's state stays
                with ck.as_directory() as d:
                    shutil.copyfile(Path(d) / STATE_FILE, folder / f"member_{int(trial.config['member'])}.pt")
                hps.append({k: float(trial.config[k]) for k in self.ranges})
            save_checkpoint(self.resume_dir / RESUME_FILE, {
                "fingerprint": self.fingerprint, "generation": self._generation + 1, "folder": folder.name,
                "hps": hps, "rows": self.rows, "best": self.best, "best_per_generation": self.best_per_generation,
                "rng": self.rng.bit_generator.state})
            for old in self.resume_dir.glob("generation_*"):
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)

        def restore(self, saved: dict) -> None:
            self.rows, self.best = saved["rows"], saved["best"]
            self.best_per_generation = saved["best_per_generation"]
            self.rng.bit_generator.state = saved["rng"]
            self._generation = saved["generation"]
            self.finished = (self._generation >= self.pbt.max_generations
                             or should_stop(self.best_per_generation, self.pbt.stop_improvement,
                                            self.pbt.stop_generations))

        def _get_new_config(self, trial, trial_to_clone):
            hp = explore({k: float(trial_to_clone.config[k]) for k in self.ranges}, self.ranges, self.rng)
            return {**trial_to_clone.config, **hp, "member": trial.config["member"]}, {}

    return TournamentPBT


def _stopper_class(tune):
    class GenerationStopper(tune.Stopper):
        """Stops the population once the scheduler has processed the last generation (the
        generation cap or the stopping rule on the best metric per generation)."""

        def __init__(self, scheduler):
            self.scheduler = scheduler

        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.scheduler.finished

    return GenerationStopper


# ------------------------------------------------------------------------------- the driver
class _AlreadyDone(Exception):
    pass


def train_population_ray(make_model: Callable[[], LFADS], train_x: torch.Tensor, valid_x: torch.Tensor,
                         model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig, pbt: PBTConfig,
                         seed: int = 0, rundir: str | Path | None = None, progress: bool = True,
                         on_generation: Callable[[int, list[dict]], None] | None = None) -> tuple[LFADS, TrainResult]:
    """:func:`nwb_autolfads.train.pbt.embedded.train_population` on Ray Tune (same arguments and result)."""
    ray, tune = _import_ray()
    t0 = time.perf_counter()
    valid_x = valid_x[torch.as_tensor(validation_subset(valid_x.shape[0], train_cfg.valid_windows),
                                      device=valid_x.device)]  # the fixed, bounded validation subset
    ranges = pbt.ranges()
    defaults = configured_hyperparameters(model_cfg, train_cfg, aug)
    rng = np.random.default_rng(seed + 7919)
    initial = initial_hyperparameters(ranges, defaults, pbt.population, rng)
    models = [make_model() for _ in initial]  # the embedded executor's draws, in its order
    model0 = models[0]
    gpu = float(pbt.ray_gpus_per_member)
    data = {"n_channels": model0.n_channels, "model_cfg": model_cfg, "observation": model0.observation,
            "train_cfg": train_cfg, "aug": aug, "train_x": train_x.cpu(), "valid_x": valid_x.cpu(),
            "generation_steps": pbt.generation_steps, "seed": seed, "hp_names": list(ranges),
            "initial_weights": [_to_cpu(m.state_dict()) for m in models], "gpu": gpu > 0,
            "threads": pbt.ray_cpus_per_member}
    started = False
    if not ray.is_initialized():
        if pbt.ray_address:
            ray.init(address=pbt.ray_address, log_to_driver=False)
        else:
            import os

            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            ray.init(num_cpus=cores, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                     configure_logging=False)
        started = True
    work = Path(rundir) if rundir is not None else Path(tempfile.mkdtemp(prefix="nwb-autolfads-ray-"))
    storage = (work / "ray").resolve()
    if storage.exists():
        shutil.rmtree(storage)  # Tune's own experiment is not reused; our resume state is
    best_dir = work / "ray_best"
    best_dir.mkdir(parents=True, exist_ok=True)
    resume_dir = work / "ray_resume" if rundir is not None else None
    fingerprint = _fingerprint(train_x, valid_x, model_cfg.__dict__, train_cfg.__dict__, aug.__dict__,
                               json.loads(json.dumps(pbt, default=lambda o: o.__dict__)), seed)
    saved = None
    if resume_dir is not None and (resume_dir / RESUME_FILE).exists():
        saved = load_checkpoint(resume_dir / RESUME_FILE)
        if saved.get("fingerprint") != fingerprint or not (best_dir / STATE_FILE).exists():
            saved = None  # another run's state: start afresh
            shutil.rmtree(resume_dir, ignore_errors=True)
    if saved is not None:  # continue after the last completed generation
        initial = saved["hps"]
        data["start_states"] = [torch.load(resume_dir / saved["folder"] / f"member_{k}.pt", map_location="cpu",
                                           weights_only=False) for k in range(pbt.population)]
    from tqdm.auto import tqdm

    bar = tqdm(total=pbt.max_generations, initial=saved["generation"] if saved else 0, desc="PBT (Ray)", unit="gen",
               disable=not progress, dynamic_ncols=True)

    def generation_done(g, rows):
        bar.update(1)
        current = [r for r in rows if r["generation"] == g]
        scores = [r["metric"] for r in current]
        top = current[int(np.nanargmin(scores))]
        bar.set_postfix(best=f"{np.nanmin(scores):.4f}", median=f"{np.nanmedian(scores):.4f}", lr=f"{top['lr']:.1e}",
                        cd=f"{top['cd_rate']:.2f}", refresh=False)
        if progress:
            bar.write(file=sys.stderr, s=f"generation {g + 1}: best {top['metric']:.4f} (member {top['member']}: "
                      + ", ".join(f"{k} {top[k]:.3g}" for k in ranges) + f"), median {np.nanmedian(scores):.4f}")
        if on_generation is not None:
            on_generation(g, rows)

    scheduler = _scheduler_class()(ranges, rng, best_dir, pbt, generation_done, resume_dir, fingerprint)
    if saved is not None:
        scheduler.restore(saved)
    resources = {"cpu": pbt.ray_cpus_per_member, **({"gpu": gpu} if gpu > 0 else {})}
    trainable = tune.with_resources(tune.with_parameters(_member_trainable, data=data), resources)
    param_space = {"member": tune.grid_search(list(range(pbt.population)))}
    for k in ranges:  # each member's initial value, looked up by its index
        param_space[k] = tune.sample_from(lambda config, k=k: initial[int(config["member"])][k])
    try:
        if scheduler.finished:  # resumed after the last generation: nothing left to train
            raise _AlreadyDone
        from ray.tune import CheckpointConfig, RunConfig

        tuner = tune.Tuner(trainable, param_space=param_space,
                           tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1, reuse_actors=False),
                           run_config=RunConfig(name="pbt", storage_path=str(storage), verbose=0,
                                                stop=_stopper_class(tune)(scheduler),
                                                checkpoint_config=CheckpointConfig(num_to_keep=4)))
        import warnings

        with warnings.catch_warnings():  # "consider reuse_actors": restarting a trial per generation is cheap here
            warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
            grid = tuner.fit()
        errors = [r.error for r in grid if r.error is not None]
        if errors:
            raise TrainingError(f"a PBT member failed on Ray: {errors[0]}")
    except _AlreadyDone:
        pass
    finally:
        bar.close()
        if started:
            ray.shutdown()
    if scheduler.best is None or not (best_dir / STATE_FILE).exists():
        raise TrainingError("the Ray PBT run ended before its first generation: see the Ray log above")
    state = torch.load(best_dir / STATE_FILE, map_location="cpu", weights_only=False)
    state.pop("generation")
    winner = models[0]
    opt = torch.optim.Adam(winner.parameters(), lr=state["hp"]["lr"], eps=train_cfg.adam_eps)
    member = Member(winner, opt, dict(state["hp"]))
    member.load(state)
    winner.to(train_x.device)
    best = scheduler.best
    stopped = should_stop(scheduler.best_per_generation, pbt.stop_improvement, pbt.stop_generations)
    summary = {"population": pbt.population, "generations": len(scheduler.best_per_generation),
               "best_member": best["member"], "best_generation": best["generation"], "stopped_by_rule": stopped,
               "lineage": lineage(scheduler.rows, best["member"], best["generation"]), "backend": "ray"}
    result = TrainResult(history=member.history, best_step=member.steps, best_valid_nll=best["score"],
                         stopped_early=stopped, seconds=time.perf_counter() - t0, pbt_history=scheduler.rows,
                         hyperparameters=dict(state["hp"]), pbt_summary=summary)
    return winner, result
