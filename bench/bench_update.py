"""Learner update throughput: the vectorised critic ensemble against a Python loop, and full SAC updates.

    python bench/bench_update.py [--quick] [--threads 1] [--device cpu] [--clock wall|cpu]

Rows (median of repeats; ratio against the first row of its section, measured in the same run):
1. critic ensemble forward + backward, 10 LayerNorm MLP critics, state 19-D + action 6-D, at the
   recipe size (256-256, batch 256) and a small, launch-bound size (64-64, batch 64): a Python loop
   over 10 modules (baseline), ``torch.func.vmap`` over stacked modules, and :class:`CriticEnsemble`
   (stacked weights, one batched matmul per layer);
2. one ``SAC.update`` on state observations (batch 256, critic/actor ratio 2 = 512 rows): updates/s;
3. one ``SAC.update`` on pixels (2 cameras 128x128, frozen ResNet-10, DrQ), the share of it spent
   in the frozen backbone, and the same update with ``cache_backbone`` (maps computed once per stored
   image). ``--quick`` uses batch 32 here (CPU is slow for pixels).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from user_learner.algorithms.sac import SAC, CriticEnsemble, SACConfig
from user_learner.replay_buffer import ReplayBuffer
from user_policies.models.mlp import MLP
from user_policies.policy_spec import PolicySpec

STATE_DIM, ACTION_DIM, CAMERAS = 19, 6, ("wrist", "front")


@dataclasses.dataclass(frozen=True)
class Timer:
    """Median of ``repeats`` timings after ``warmup`` calls, on ``clock`` (CUDA-synchronised)."""

    repeats: int
    device: torch.device
    clock: Callable[[], float] = time.perf_counter

    def __call__(self, fn: Callable[[], object], warmup: int = 1, repeats: int | None = None) -> float:
        times = []
        for i in range(warmup + (repeats or self.repeats)):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            start = self.clock()
            fn()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(self.clock() - start)
        return statistics.median(times)


def ensemble_rows(batch: int, hidden: int, timer: Timer) -> list[tuple[str, float]]:
    """fwd+bwd of 10 critics (two hidden layers of ``hidden``) three ways."""
    in_dim, device = STATE_DIM + ACTION_DIM, timer.device
    x = torch.randn(batch, in_dim, device=device)
    loop = nn.ModuleList(MLP(in_dim, (hidden, hidden), out_dim=1) for _ in range(10)).to(device)

    def run_loop() -> None:
        torch.stack([m(x).squeeze(-1) for m in loop]).sum().backward()

    params, buffers = torch.func.stack_module_state(list(loop))
    base = copy.deepcopy(loop[0]).to("meta")

    def one(p: dict, b: dict, inp: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(base, (p, b), (inp,))

    def run_vmap() -> None:
        torch.func.vmap(one, in_dims=(0, 0, None))(params, buffers, x).sum().backward()

    stacked = CriticEnsemble(in_dim, (hidden, hidden), 10).to(device)

    def run_stacked() -> None:
        stacked(x).sum().backward()

    size = f"{hidden}-{hidden}, batch {batch}"
    return [
        (f"10 critics {size}: Python loop of modules", timer(run_loop, 3)),
        (f"10 critics {size}: torch.func.vmap", timer(run_vmap, 3)),
        (f"10 critics {size}: CriticEnsemble (stacked)", timer(run_stacked, 3)),
    ]


def filled_buffer(spec: PolicySpec, rows: int, rng: np.random.Generator) -> ReplayBuffer:
    buf = ReplayBuffer(rows + 1, spec.observation_shapes(), spec.action_dim)
    shapes = spec.observation_shapes()

    def obs() -> dict[str, np.ndarray]:
        out = {k: rng.integers(0, 256, s, dtype=np.uint8) for k, s in shapes.items() if k != "state"}
        out["state"] = rng.normal(size=shapes["state"]).astype(np.float32)
        return out

    current = obs()
    for _ in range(rows):
        nxt = obs()
        buf.add(current, rng.uniform(-1, 1, spec.action_dim), float(rng.normal()), nxt, False)
        current = nxt
    return buf


def sac_row(
    spec: PolicySpec, batch: int, timer: Timer, repeats: int, cache: bool = False
) -> tuple[float, float, float]:
    """(update time, sample time, frozen-backbone time per update) for one SAC.update.

    With ``cache`` the same batch is reused, so after the warm-up every map is a cache hit (steady state).
    """
    device = timer.device
    sac = SAC(SACConfig(batch_size=batch, cache_backbone=cache), spec, device=device)
    rng = np.random.default_rng(0)
    buf = filled_buffer(spec, min(4 * sac.rows_per_update, 2048), rng)
    data = buf.sample(sac.rows_per_update, rng, device)
    update = timer(lambda: sac.update(data), repeats=repeats)
    sample = timer(lambda: buf.sample(sac.rows_per_update, rng, device), repeats=repeats)
    backbone = 0.0
    if spec.image_keys:  # obs + next_obs per critic step, critic_actor_ratio steps per update
        half = {k: v[: batch] for k, v in data["obs"].items()}
        one = timer(lambda: sac.policy.encoder.backbone_features(half), repeats=repeats)
        backbone = one * 2 * sac.cfg.critic_actor_ratio
    return update, sample, backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, pixel batch 32")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu = this process's CPU time (robust on a shared machine; use with --threads 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 5 if args.quick else 20
    timer = Timer(repeats, device, time.process_time if args.clock == "cpu" else time.perf_counter)
    pixel_batch = 32 if args.quick else 256
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {where}; torch {torch.__version__}; {args.clock} clock, median of {repeats} repeats\n")
    print(f"| {'measurement':<66} | {'median ms':>10} | {'per s':>8} | {'ratio':>6} |")
    print(f"|{'-' * 68}|{'-' * 12}|{'-' * 10}|{'-' * 8}|")

    def row(name: str, seconds: float, baseline: float) -> None:
        print(f"| {name:<66} | {seconds * 1e3:>10.2f} | {1 / seconds:>8.3g} | {baseline / seconds:>5.2f}x |")

    for batch, hidden in ((256, 256), (64, 64)):  # the recipe (compute-bound on CPU), a launch-bound size
        ens = ensemble_rows(batch, hidden, timer)
        for name, seconds in ens:
            row(name + " fwd+bwd", seconds, ens[0][1])

    state_spec = PolicySpec(state_dim=STATE_DIM, action_dim=ACTION_DIM)
    update, sample, _ = sac_row(state_spec, 256, timer, repeats)
    row("SAC.update, state MLP, batch 256 x ratio 2, 10 critics", update, update)
    row("  ReplayBuffer.sample of its 512 rows", sample, update)

    pixel_spec = PolicySpec(state_dim=STATE_DIM, action_dim=ACTION_DIM, kind="cnn", cameras=CAMERAS)
    update, sample, backbone = sac_row(pixel_spec, pixel_batch, timer, max(3, repeats // 5))
    row(f"SAC.update, pixels 2x128x128, batch {pixel_batch} x ratio 2, 10 critics", update, update)
    row(f"  ReplayBuffer.sample of its {2 * pixel_batch} rows", sample, update)
    row("  frozen ResNet-10 forwards inside it (obs + next_obs)", backbone, update)
    cached, _, _ = sac_row(pixel_spec, pixel_batch, timer, max(3, repeats // 5), cache=True)
    row("  same with cache_backbone (maps cached, no DrQ; steady state)", cached, update)


if __name__ == "__main__":
    main()
