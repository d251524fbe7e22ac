"""What one VLA training update costs on this machine: the issue's default size against a CPU-scale one.

    python bench/bench_vla_update.py [--repeats 3] [--threads 1] [--device cpu]

One HG-DAgger / cloning update of the ``vla`` policy kind (flow-matching loss, backward, Adam step) on a
batch of random observations of the two-task interface (2 cameras, a 40-D state, a 64-byte instruction,
7-D actions), at two sizes: the kind's defaults (~5.7M parameters, images 128x128, patches of 16, batch
256, chunks of 10) and the size ``bench_hg_dagger.py`` trains on this CPU (d_model 64, 2 + 2 layers,
images 32x32, batch 64, chunks of 5). Each size twice: the baseline is a batch whose longest instruction
fills all 64 bytes (every byte a token, as before the policy left out the padding past a batch's longest
instruction), against the two tasks' own instructions (from their YAMLs; 28 bytes at most). Median of
``--repeats`` after a warm-up; ``--threads 1`` is what the learner node uses. The last column: 3,000
updates (a clone) at that speed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from user_policies.observation import INSTRUCTION_BYTES
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec

PROPRIO, ACTIONS = 40, 7
STATE_DIM = PROPRIO + INSTRUCTION_BYTES
TASKS = ("pick_and_place", "peg_insertion")
SIZES = {
    "default (issue size)": ({}, 128, 256, 10),
    "CPU run (bench_hg_dagger)": ({"d_model": 64, "n_heads": 2, "prefix_layers": 2, "expert_layers": 2,
                                   "patch_size": 16}, 32, 64, 5),
}


def batch(image: int, rows: int, chunk: int, texts: tuple[str, ...], device: str) -> tuple[dict, torch.Tensor]:
    """Random observations (state, two cameras) with ``texts`` as instructions in turn, and target chunks."""
    gen = np.random.default_rng(0)
    state = gen.uniform(-1, 1, (rows, STATE_DIM)).astype(np.float32)
    for i in range(rows):
        data = np.frombuffer(texts[i % len(texts)].encode(), dtype=np.uint8)
        state[i, PROPRIO:] = np.pad(data, (0, INSTRUCTION_BYTES - len(data)))
    obs = {"state": torch.from_numpy(state)}
    for cam in ("wrist", "front"):
        obs[cam] = torch.from_numpy(gen.integers(0, 256, (rows, image, image, 3), dtype=np.uint8))
    chunks = torch.from_numpy(gen.uniform(-1, 1, (rows, chunk, ACTIONS)).astype(np.float32))
    return {k: v.to(device) for k, v in obs.items()}, chunks.to(device)


def update_ms(options: dict, image: int, rows: int, chunk: int, texts: tuple[str, ...], repeats: int,
              device: str) -> tuple[float, int]:
    """(median ms of one update, parameters)."""
    spec = PolicySpec(kind="vla", state_dim=STATE_DIM, action_dim=ACTIONS, cameras=("wrist", "front"),
                      image_size=(image, image), chunk_size=chunk, instruction_slice=(PROPRIO, INSTRUCTION_BYTES),
                      options=options)
    torch.manual_seed(0)
    policy = build_policy(spec, device=device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)
    obs, chunks = batch(image, rows, chunk, texts, device)
    times = []
    for i in range(1 + repeats):
        start = time.perf_counter()
        loss = policy.imitation_loss(obs, chunks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, sum(p.numel() for p in policy.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"one VLA update ({args.device}, {args.threads} thread(s), median of {args.repeats})")
    for column in ("size", "parameters", "images, batch, chunk", "instruction tokens", "ms / update", "vs 64 bytes",
                   "3,000 updates"):
        table.add_column(column, justify="left" if column in ("size", "instruction tokens") else "right")
    from user_robot.task_config import load_task

    instructions = tuple(load_task(task).instruction for task in TASKS)
    for name, (options, image, rows, chunk) in SIZES.items():
        full = "x" * INSTRUCTION_BYTES  # (a 64-byte instruction: nothing to leave out)
        baseline, params = update_ms(options, image, rows, chunk, (full,), args.repeats, args.device)
        real, _ = update_ms(options, image, rows, chunk, instructions, args.repeats, args.device)
        longest = max(len(t.encode()) for t in instructions)
        for tokens, ms in ((f"{INSTRUCTION_BYTES} (baseline)", baseline), (f"{longest} (the two tasks')", real)):
            table.add_row(name, f"{params:,}", f"{image}x{image}, {rows}, {chunk}", tokens, f"{ms:,.0f}",
                          f"{baseline / ms:.2f}x", f"{3000 * ms / 3.6e6:.2f} h")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
