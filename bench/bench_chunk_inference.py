"""The control loop while a VLA infers action chunks: inline (inside the tick) against background.

    python bench/bench_chunk_inference.py [--seconds 30] [--device cpu] [--set d_model=256 ...]

A 10 Hz ``ControlLoop`` (the actor's: a ROS node on its own single-threaded executor) plays chunks of
the ``vla`` policy kind (default size: ~5.7M parameters; 2 cameras 128x128, the state with a 64-byte
instruction, chunks of 10 actions, 10 flow steps) in three settings, each for ``--seconds``:
``inline`` (the tick infers the next chunk when the last is used up: what ``chunk_inference: inline``
does, the baseline), ``background switch`` and ``background ensemble`` (a worker infers the next
chunk while the current one plays: :class:`user_policies.chunk_player.BackgroundChunks`). Prints the
control period p50/p99, missed ticks (a period over 150 ms), ticks that held the arm for want of a
chunk, and the inference time, with p99 ratios against inline.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

MISSED_TICK_MS = 150.0
CAMERAS = ("wrist", "front")
STATE = 19


def run_loop(policy, obs: dict, seconds: float, mode: str) -> dict:
    """Run the 10 Hz loop for ``seconds`` in ``mode`` (inline | switch | ensemble); periods and counts."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from user_policies.chunk_player import BackgroundChunks, ChunkPlayer
    from user_robot.nodes.runtime import ControlLoop

    node = rclpy.create_node(f"bench_chunks_{mode}")
    ticks: list[float] = []
    inline_s: list[float] = []
    planned: list[np.ndarray] = []
    chunks = None
    if mode != "inline":
        chunks = BackgroundChunks(lambda o: (policy.act(o, deterministic=True), 1), ChunkPlayer(mode, lead_ticks=3))

    def tick() -> None:
        ticks.append(time.monotonic())
        if chunks is not None:
            chunks.step(obs)
        elif not planned:
            start = time.perf_counter()
            planned.extend(policy.act(obs, deterministic=True))
            inline_s.append(time.perf_counter() - start)
        else:
            planned.pop(0)

    loop = ControlLoop(node, 0.1, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    loop.start()
    time.sleep(seconds)
    loop.close()
    executor.shutdown()
    spinner.join()
    node.destroy_node()
    held = 0
    if chunks is not None:
        chunks.close()
        held = chunks.player.held_ticks
    periods = np.diff(ticks) * 1e3
    inference = list(chunks.inference_s) if chunks is not None else inline_s
    return {"periods": periods, "held": held, "inference_ms": float(np.median(inference)) * 1e3 if inference else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="per setting")
    parser.add_argument("--device", default="cpu", help="where the policy runs (cpu, cuda)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a vla option (int)")
    args = parser.parse_args()

    import rclpy
    import torch
    from rich.console import Console
    from rich.table import Table

    from user_policies.observation import INSTRUCTION_BYTES
    from user_policies.policies.base import build_policy
    from user_policies.policy_spec import PolicySpec

    torch.set_num_threads(1)  # as the actor
    options = {key: int(value) for key, value in (item.split("=", 1) for item in args.set)}
    spec = PolicySpec(kind="vla", state_dim=STATE + INSTRUCTION_BYTES, action_dim=7, cameras=CAMERAS,
                      image_size=(128, 128), chunk_size=10, instruction_slice=(STATE, INSTRUCTION_BYTES),
                      options=options)
    policy = build_policy(spec, device=args.device).eval()
    params = sum(p.numel() for p in policy.parameters())
    rng = np.random.default_rng(0)
    state = np.zeros(STATE + INSTRUCTION_BYTES, np.float32)
    state[STATE:STATE + 28] = np.frombuffer(b"insert the peg into the hole", np.uint8)
    obs = {"state": state, **{c: rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for c in CAMERAS}}
    rclpy.init()
    rows = []
    try:
        for mode in ("inline", "switch", "ensemble"):
            result = run_loop(policy, obs, args.seconds, mode)
            rows.append((mode, result))
            print(f"{mode}: p99 {np.percentile(result['periods'], 99):.1f} ms", flush=True)
    finally:
        rclpy.try_shutdown()

    table = Table(title=f"10 Hz control loop, vla {params / 1e6:.1f}M parameters on {args.device}, chunks of 10, "
                        f"{args.seconds:.0f} s each")
    for column in ("inference", "period p50", "period p99", "missed ticks (>150 ms)", "held ticks",
                   "inference p50", "p99 vs inline"):
        table.add_column(column)
    base = np.percentile(rows[0][1]["periods"], 99)
    for mode, result in rows:
        periods = result["periods"]
        p99 = np.percentile(periods, 99)
        table.add_row("inline (in the tick)" if mode == "inline" else f"background, {mode}",
                      f"{np.percentile(periods, 50):.1f} ms", f"{p99:.1f} ms",
                      f"{int(np.sum(periods > MISSED_TICK_MS))}/{len(periods)}", str(result["held"]),
                      f"{result['inference_ms']:.0f} ms", f"{p99 / base:.2f}x")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
