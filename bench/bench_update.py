"""Learner update throughput: the vectorised critic ensemble against a Python loop, and full SAC updates.

    python bench/bench_update.py [--quick] [--threads 1] [--device cpu] [--clock wall|cpu]

Rows (median of repeats; ratio against the first row of its section, measured in the same run; an
indented row is a part of the update above it, its ratio column that part's share of it):
1. critic ensemble forward + backward, 10 LayerNorm MLP critics, state 19-D + action 6-D, at the
   recipe size (256-256, batch 256) and a small, launch-bound size (64-64, batch 64): a Python loop
   over 10 modules (baseline), ``torch.func.vmap`` over stacked modules, and :class:`CriticEnsemble`
   (stacked weights, one batched matmul per layer);
2. one ``SAC.update`` on state observations (batch 256, critic/actor ratio 2 = 512 rows): updates/s,
   against the same update written plainly (:class:`EagerSAC`, the baseline of its section: ten critic
   modules in a Python loop, per-tensor Adam, a ``.item()`` per loss), with its breakdown (sample,
   critic steps, actor + temperature step);
3. one ``SAC.update`` on pixels (2 cameras 128x128, frozen ResNet-10, DrQ) against the eager
   baseline, the share of it spent in the frozen backbone, and the same update with
   ``cache_backbone`` (maps computed once per stored image; its batches come without images, which
   the update reads only for observations not cached yet), and with ``autocast: bf16`` (for
   GPUs; a CPU without bf16 units is slower with it). ``--quick`` uses batch 32 here (CPU is slow for
   pixels).

The state update is also timed in a stream of 20 back to back (the learner's steady state), its metrics
read at once after each update (a device sync per update) and one update later, as ``LearnerCore`` reads
them (:class:`~user_learner.algorithms.update_metrics.UpdateMetrics`: one update stays queued while the
host prepares the next); on a CPU the two are the same.

On a GPU: ``python bench/bench_update.py --device cuda`` (no ROS needed; a few minutes), which adds
the updates with the critics compiled as CUDA graphs (``--compile``), and their stream rows.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from user_learner.algorithms.sac import SAC, CriticEnsemble, SACConfig, split_batch
from user_learner.augment import augment_observation
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
                torch.cuda.synchronize(self.device)
            start = self.clock()
            fn()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
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


def filled_buffer(spec: PolicySpec, rows: int, rng: np.random.Generator, device: torch.device) -> ReplayBuffer:
    """Random transitions; on a GPU the images kept there, as the learner keeps them (``replay_images: auto``)."""
    image_device = device if device.type == "cuda" else None
    buf = ReplayBuffer(rows + 1, spec.observation_shapes(), spec.action_dim, image_device)
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


class EagerSAC:
    """The same SAC update written plainly, as a first version would be: the baseline of every ratio.

    Same policy, sizes, minibatches and losses as :class:`SAC`, but ten critic modules in a Python
    loop, targets updated parameter by parameter, per-tensor Adam, and a ``.item()`` per loss.
    """

    def __init__(self, sac: SAC) -> None:
        cfg, device = sac.cfg, sac.device
        self.cfg, self.spec, self.device, self.generator = cfg, sac.spec, device, sac.generator
        self.policy = copy.deepcopy(sac.policy)
        in_dim = self.policy.encoder.out_dim + self.spec.action_dim
        self.critics = nn.ModuleList(MLP(in_dim, cfg.critic_hidden_dims, out_dim=1)
                                     for _ in range(cfg.num_critics)).to(device)
        self.targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)
        encoder = [p for p in self.policy.encoder.parameters() if p.requires_grad]
        actor = [p for n, p in self.policy.named_parameters() if not n.startswith("encoder.")]
        self.critic_opt = torch.optim.Adam([*self.critics.parameters(), *encoder], lr=cfg.lr_critic, foreach=False)
        self.actor_opt = torch.optim.Adam(actor, lr=cfg.lr_actor, foreach=False)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr_temperature, foreach=False)

    def _encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.spec.image_keys and self.cfg.drq_pad > 0:
            obs = augment_observation(obs, self.spec.image_keys, self.cfg.drq_pad, self.generator)
        return self.policy.encoder(obs)

    def update(self, batch: dict) -> dict[str, float]:
        cfg, out = self.cfg, {}
        features = torch.empty(0)
        for mb in split_batch(batch, cfg.critic_actor_ratio):
            features = self._encode(mb["obs"])
            with torch.no_grad():
                next_features = self._encode(mb["next_obs"])
                next_action, _ = self.policy.sample_from_features(next_features, self.generator)
                chosen = torch.randperm(cfg.num_critics, generator=self.generator, device=self.device)
                nxt = torch.cat([next_features, next_action], -1)
                next_q = torch.stack([self.targets[int(i)](nxt).squeeze(-1)
                                      for i in chosen[: cfg.num_target_critics]]).min(0).values
                target = mb["reward"] + cfg.gamma * (1.0 - mb["done"]) * next_q
            x = torch.cat([features, mb["action"]], -1)
            loss = sum(nn.functional.mse_loss(c(x).squeeze(-1), target) for c in self.critics) / cfg.num_critics
            self.critic_opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in self.critic_opt.param_groups for p in g["params"]], cfg.grad_clip)
            self.critic_opt.step()
            with torch.no_grad():
                for p, tp in zip(self.critics.parameters(), self.targets.parameters(), strict=True):
                    tp.mul_(1 - cfg.tau).add_(p, alpha=cfg.tau)
            out["critic_loss"] = loss.item()
        features = features.detach()
        action, log_prob = self.policy.sample_from_features(features, self.generator)
        x = torch.cat([features, action], -1)
        q = torch.stack([c(x).squeeze(-1) for c in self.critics]).mean(0)
        actor_loss = (self.log_alpha.exp().detach() * log_prob - q).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha.exp() * (log_prob.detach() - cfg.target_entropy_scale * self.spec.action_dim))
        self.alpha_opt.zero_grad()
        alpha_loss.mean().backward()
        self.alpha_opt.step()
        out["actor_loss"] = actor_loss.item()
        return out


@dataclasses.dataclass(frozen=True)
class UpdateTimes:
    """One update's median times (s): eager baseline, ours, and the parts of ours."""

    eager: float
    update: float
    sample: float
    sample_without_images: float  # the same rows' state alone (the learner's batches with the cache)
    backbone: float  # frozen-backbone forwards inside one update (pixels)
    critic: float  # the critic steps (encoder included)
    actor: float  # the actor + temperature step
    stream_synced: float = float("nan")  # per update, in a stream of updates, each one's metrics read at once
    stream_lagged: float = float("nan")  # ... each one's metrics read once the next is queued (as LearnerCore)


STREAM = 20
"""Updates in one timed stream (the learner's steady state: one update after the other on one batch)."""


def stream_of(update: Callable[[], Mapping[str, float]], lagged: bool) -> Callable[[], None]:
    """:data:`STREAM` updates back to back, each one's metrics read at once, or (``lagged``) after the next
    update has been queued, as ``LearnerCore.update`` writes them."""

    def run() -> None:
        unread: list[Mapping[str, float]] = []
        for _ in range(STREAM):
            unread.append(update())
            while len(unread) > int(lagged):
                dict(unread.pop(0))
        for metrics in unread:
            dict(metrics)

    return run


def sac_row(spec: PolicySpec, batch: int, timer: Timer, repeats: int, eager: bool = True, stream: bool = False,
            **changes) -> UpdateTimes:
    """Times of one SAC.update (``SACConfig`` ``changes``) and, with ``eager``, its baseline on the same batch
    (with ``compile``, the critic and actor parts are not timed: nan); with ``stream``, the time per update in
    a stream of them, metrics read at once or one update later (:func:`stream_of`).

    With ``cache_backbone`` the same batch is reused, so after the warm-up every map is a cache hit (steady
    state).
    """
    device = timer.device
    sac = SAC(SACConfig(batch_size=batch, **changes), spec, device=device)
    rng = np.random.default_rng(0)
    buf = filled_buffer(spec, min(4 * sac.rows_per_update, 2048), rng, device)
    data = buf.sample(sac.rows_per_update, rng, device)
    eager_sac = EagerSAC(sac) if eager else None
    baseline = 0.0 if eager_sac is None else timer(lambda: eager_sac.update(data), repeats=repeats)
    update = timer(lambda: sac.update(data), repeats=repeats)
    sample = timer(lambda: buf.sample(sac.rows_per_update, rng, device), repeats=repeats)
    light = timer(lambda: buf.gather(buf.sample_indices(sac.rows_per_update, rng), device, images=False),
                  repeats=repeats)
    critic = actor = backbone = float("nan")
    if changes.get("compile", "none") == "none":  # (compiled critics: timed only as the whole update, whose
        minibatch = next(split_batch(data, sac.cfg.critic_actor_ratio))  # steps mark the CUDA graphs' steps)
        critic = timer(lambda: sac._update_critic(minibatch), repeats=repeats) * sac.cfg.critic_actor_ratio
        features = sac._update_critic(minibatch)[2]
        actor = timer(lambda: sac._update_actor(features), repeats=repeats)
    if spec.image_keys:  # obs + next_obs per critic step, critic_actor_ratio steps per update
        half = {k: v[: batch] for k, v in data["obs"].items()}
        one = timer(lambda: sac.policy.encoder.backbone_features(half), repeats=repeats)
        backbone = one * 2 * sac.cfg.critic_actor_ratio
    synced = lagged = float("nan")
    if stream:
        synced = timer(stream_of(lambda: sac.update(data), lagged=False), repeats=repeats) / STREAM
        lagged = timer(stream_of(lambda: sac.update(data), lagged=True), repeats=repeats) / STREAM
    return UpdateTimes(baseline, update, sample, light, backbone, critic, actor, synced, lagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, pixel batch 32")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", default="", help="torch.compile mode for the compiled rows (default: "
                        "reduce-overhead, i.e. CUDA graphs, on a GPU; none on a CPU, where it is slower)")
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
    print(f"| {'measurement':<80} | {'median ms':>10} | {'per s':>8} | {'ratio':>6} |")
    print(f"|{'-' * 82}|{'-' * 12}|{'-' * 10}|{'-' * 8}|")

    def row(name: str, seconds: float, baseline: float) -> None:
        print(f"| {name:<80} | {seconds * 1e3:>10.2f} | {1 / seconds:>8.3g} | {baseline / seconds:>5.2f}x |")

    def part(name: str, seconds: float, whole: float) -> None:  # ratio column: its share of the update
        print(f"| {'  ' + name:<80} | {seconds * 1e3:>10.2f} | {1 / seconds:>8.3g} | {seconds / whole:>5.0%} |")

    for batch, hidden in ((256, 256), (64, 64)):  # the recipe (compute-bound on CPU), a launch-bound size
        ens = ensemble_rows(batch, hidden, timer)
        for name, seconds in ens:
            row(name + " fwd+bwd", seconds, ens[0][1])

    state_spec = PolicySpec(state_dim=STATE_DIM, action_dim=ACTION_DIM)
    t = sac_row(state_spec, 256, timer, repeats, stream=True)
    row("SAC.update, state MLP, batch 256 x ratio 2, 10 critics: eager baseline", t.eager, t.eager)
    row("SAC.update, state (ours)", t.update, t.eager)
    row(f"  the same, {STREAM} in a stream, each one's metrics read at once (a device sync per update)",
        t.stream_synced, t.eager)
    row(f"  the same, {STREAM} in a stream, metrics read one update later (LearnerCore: one in flight)",
        t.stream_lagged, t.eager)
    part("ReplayBuffer.sample of its 512 rows", t.sample, t.update)
    part("critic steps", t.critic, t.update)
    part("actor + temperature step", t.actor, t.update)
    row("SAC.update, state, autocast bf16", sac_row(state_spec, 256, timer, repeats, False, autocast="bf16").update,
        t.eager)
    mode = args.compile or ("reduce-overhead" if device.type == "cuda" else "none")
    if mode != "none":
        compiled = sac_row(state_spec, 256, timer, repeats, False, compile=mode).update
        row(f"SAC.update, state, critics compiled ({mode})", compiled, t.eager)

    pixel_spec = PolicySpec(state_dim=STATE_DIM, action_dim=ACTION_DIM, kind="cnn", cameras=CAMERAS)
    t = sac_row(pixel_spec, pixel_batch, timer, max(3, repeats // 5))
    row(f"SAC.update, pixels 2x128x128, batch {pixel_batch} x ratio 2, 10 critics: eager baseline", t.eager, t.eager)
    row("SAC.update, pixels (ours)", t.update, t.eager)
    kept = "images on the GPU" if device.type == "cuda" else "images in host memory"
    part(f"ReplayBuffer.sample of its {2 * pixel_batch} rows ({kept})", t.sample, t.update)
    part("frozen ResNet-10 forwards inside it (obs + next_obs)", t.backbone, t.update)
    part("critic steps (encoder included)", t.critic, t.update)
    part("actor + temperature step", t.actor, t.update)
    few = max(3, repeats // 5)
    cached = sac_row(pixel_spec, pixel_batch, timer, few, False, cache_backbone=True)
    row("SAC.update, pixels, cache_backbone (maps cached, no DrQ; steady state)", cached.update, t.eager)
    part(f"ReplayBuffer.sample of its {2 * pixel_batch} rows, images included", cached.sample, cached.update)
    part("the same rows without images (what the learner draws with the cache)", cached.sample_without_images,
         cached.update)
    bf16 = sac_row(pixel_spec, pixel_batch, timer, few, False, cache_backbone=True, autocast="bf16")
    row("SAC.update, pixels, cache_backbone + autocast bf16", bf16.update, t.eager)
    if mode != "none":
        both = sac_row(pixel_spec, pixel_batch, timer, few, False, True, cache_backbone=True, autocast="bf16",
                       compile=mode)
        row(f"SAC.update, pixels, cache_backbone + bf16 + critics compiled ({mode})", both.update, t.eager)
        row(f"  the same, {STREAM} in a stream, metrics read at once", both.stream_synced, t.eager)
        row(f"  the same, {STREAM} in a stream, metrics read one update later (LearnerCore)", both.stream_lagged,
            t.eager)

if __name__ == "__main__":
    main()
