"""Training-step and inference speed of the LFADS model, next to a plain per-timestep version.

    python benchmarks/model_speed.py [--device auto|cpu|cuda] [--steps 20] [--threads N]

``--device auto`` (the default) measures on the CPU and, when torch sees a GPU, on the GPU too.

Two configurations (issue "The LFADS model, complete, correct and fast"):
- reference: 30 Poisson channels, 50-bin windows, batch 32, encoders 64, controller 64,
  4 inferred inputs, IC 64, generator 200, 100 factors;
- emg: 12 Gamma channels, 100-bin windows, batch 32, the default EMG model sizes.

For each it times, in a fresh subprocess so peak memory is per measurement:
- one training step (forward + backward + Adam update), median over --steps steps;
- posterior sampling with 50 samples for 200 windows (nwb_autolfads.model.inference.infer);
for nwb_autolfads' model (on a GPU also without CUDA graphs: "eager") and for a straightforward
version that runs every RNN (encoders included) as a Python loop over nn.GRUCell, so the ratio is
measured, not remembered.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch
from torch import nn

from nwb_autolfads.config import InferenceConfig, ModelConfig
from nwb_autolfads.train.cudagraphs import training_forward
from nwb_autolfads.model.inference import infer
from nwb_autolfads.model.lfads import LFADS, LFADSOutput
from nwb_autolfads.model.observations import Gamma, Poisson

CONFIGS = {
    "reference": dict(channels=30, T=50, batch=32, obs="poisson",
                      model=dict(ic_enc_dim=64, ci_enc_dim=64, con_dim=64, co_dim=4, ic_dim=64, gen_dim=200,
                                 factor_dim=100)),
    "emg": dict(channels=12, T=100, batch=32, obs="gamma",
                model=dict(ic_enc_dim=64, ci_enc_dim=64, con_dim=64, co_dim=2, ic_dim=64, gen_dim=64, factor_dim=9)),
}


class NaiveLFADS(LFADS):
    """The same model with every RNN unrolled in Python over GRUCells (the plain way)."""

    def __init__(self, n_channels, cfg, observation):
        super().__init__(n_channels, cfg, observation)
        E, Ec = cfg.ic_enc_dim, cfg.ci_enc_dim
        del self.ic_encoder, self.ci_encoder  # replaced by per-direction cells
        self.ic_fwd, self.ic_bwd = nn.GRUCell(n_channels, E), nn.GRUCell(n_channels, E)
        self.ci_fwd, self.ci_bwd = nn.GRUCell(n_channels, Ec), nn.GRUCell(n_channels, Ec)

    @staticmethod
    def _run(cell, x, reverse=False):
        h = x.new_zeros(x.shape[0], cell.hidden_size)
        out = [None] * x.shape[1]
        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        for t in steps:
            h = cell(x[:, t], h)
            out[t] = h
        return torch.stack(out, 1), h

    def forward(self, x, sample=True, n_samples=1):
        cfg = self.cfg
        if n_samples > 1:  # the plain way: every sample re-runs the encoders
            x = x.repeat_interleave(n_samples, dim=0)
        B, T, C = x.shape
        clip = cfg.cell_clip
        x = self.dropout(x)
        _, hf = self._run(self.ic_fwd, x)
        _, hb = self._run(self.ic_bwd, x, reverse=True)
        ic_mean, ic_logvar = self.ic_posterior(self.dropout(torch.cat([hf, hb], -1))).chunk(2, -1)
        ic_std = torch.sqrt(ic_logvar.exp() + cfg.ic_post_var_min)
        ic = ic_mean + ic_std * torch.randn_like(ic_std) if sample else ic_mean
        kl_ic = 0.5 * (math.log(cfg.ic_prior_var) - 2 * ic_std.log()
                       + (ic_std**2 + ic_mean**2) / cfg.ic_prior_var - 1).sum(-1)
        g = torch.clamp(self.ic_to_g0(ic), -clip, clip)
        fwd, _ = self._run(self.ci_fwd, x)
        bwd, _ = self._run(self.ci_bwd, x, reverse=True)
        fwd = torch.cat([torch.zeros_like(fwd[:, :1]), fwd[:, :-1]], 1)
        bwd = torch.cat([bwd[:, 1:], torch.zeros_like(bwd[:, :1])], 1)
        ci = self.dropout(torch.cat([fwd, bwd], -1))
        c = self.con_h0.expand(B, -1)
        f = self.to_factors(self.dropout(g))
        factors, us, means, stds = [], [], [], []
        for t in range(T):
            c = torch.clamp(self.controller(torch.cat([ci[:, t], f], -1), c), -clip, clip)
            m, lv = self.co_posterior(c).chunk(2, -1)
            s = torch.sqrt(lv.exp() + 1e-4)
            u = m + s * torch.randn_like(s) if sample else m
            g = torch.clamp(self.generator(u, g), -clip, clip)
            f = self.to_factors(self.dropout(g))
            factors.append(f), us.append(u), means.append(m), stds.append(s)
        u_all = torch.stack(us, 1)
        mean, std = torch.stack(means, 1), torch.stack(stds, 1)
        log_q = (-0.5 * (math.log(2 * math.pi) + 2 * std.log() + ((u_all - mean) / std) ** 2)).sum((1, 2))
        kl_co = log_q - self.co_prior.log_prob(u_all)
        fac = torch.stack(factors, 1)
        params = self.readout(fac).reshape(B, T, C, self.observation.n_params)
        return LFADSOutput(params, fac, u_all, ic_mean, ic_std, kl_ic, kl_co)


def _measure(name: str, impl: str, device: str, steps: int) -> dict:
    spec = CONFIGS[name]
    torch.manual_seed(0)
    obs = Poisson() if spec["obs"] == "poisson" else Gamma()
    cfg = ModelConfig(observation="gamma", **spec["model"])
    cls = NaiveLFADS if impl == "plain GRUCell loop" else LFADS  # "nwb_autolfads eager": no CUDA graphs
    model = cls(spec["channels"], cfg, obs).to(device)
    B, T, C = spec["batch"], spec["T"], spec["channels"]
    if spec["obs"] == "poisson":
        data = torch.poisson(torch.full((200, T, C), 0.3)).to(device)
    else:
        data = torch.distributions.Gamma(2.0, 2.0).sample((200, T, C)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for i in range(steps + 3):
        xb = data[torch.randint(0, 200, (B,))]
        sync()
        t0 = time.perf_counter()
        if cls is LFADS:  # what training does: on CUDA the step's forward + backward are graph replays
            out = training_forward(model, xb, graphs=impl == "nwb_autolfads")
        else:
            out = model(xb)
        loss = obs.nll(out.params, xb).mean() + 1e-4 * (out.kl_ic.mean() + out.kl_co.mean())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
        opt.step()
        sync()
        if i == 0:
            first = time.perf_counter() - t0  # includes capturing the CUDA graphs
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    sync()
    t0 = time.perf_counter()
    infer(model, data, InferenceConfig(mode="sample", n_samples=50))  # default memory-bounded batches
    sync()
    t_inf = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    n_params = sum(p.numel() for p in model.parameters())
    return {"device": device, "config": name, "impl": impl, "step_ms": 1e3 * times[len(times) // 2],
            "step_min_ms": 1e3 * times[0], "first_s": first, "infer_s": t_inf, "peak_mb": peak, "gpu_peak_mb": gpu_peak,
            "params": n_params}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the CPU, and the GPU too when torch sees one")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--only", choices=sorted(CONFIGS), default=None)
    p.add_argument("--_child", nargs=2, metavar=("CONFIG", "IMPL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child:
        print(json.dumps(_measure(args._child[0], args._child[1], args.device, args.steps)))
        return
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    rows = []
    for device in devices:
        for name in ([args.only] if args.only else CONFIGS):
            impls = ["nwb_autolfads", "nwb_autolfads eager", "plain GRUCell loop"] if device == "cuda" else \
                ["nwb_autolfads", "plain GRUCell loop"]
            for impl in impls:
                cmd = [sys.executable, __file__, "--device", device, "--steps", str(args.steps), "--_child", name, impl]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if "cuda" in devices else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads{gpu}")
    print()
    print("| device | config    | implementation      | params | train step median / min (ms) | first step (s) "
          "| sampling 50 x 200 (s) | peak RSS (MB) | peak GPU memory (MB) |")
    print("| ------ | --------- | ------------------- | ------ | ---------------------------- | -------------- "
          "| --------------------- | ------------- | -------------------- |")
    for r in rows:
        step = f"{r['step_ms']:.1f} / {r['step_min_ms']:.1f}"
        gpu_mem = f"{r['gpu_peak_mb']:.0f}" if r.get("gpu_peak_mb") is not None else "-"
        print(f"| {r['device']:6s} | {r['config']:9s} | {r['impl']:19s} | {r['params']:6d} | {step:>28s} | {r['first_s']:14.2f} "
              f"| {r['infer_s']:21.2f} | {r['peak_mb']:13.0f} | {gpu_mem:>20s} |")
    print()
    print("Timings on shared machines vary by up to ~30% between runs; compare rows of the same run.")


if __name__ == "__main__":
    main()
