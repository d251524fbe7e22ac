"""Weight sync and control-loop timing for the CNN policy, over real DDS, in separate processes.

    python bench/bench_weight_sync.py [--versions 8] [--long-s 120]

Measures, for the pixel recipe's CNN actor (``rlpd_cnn``: 2 cameras 128x128, frozen ResNet-10, a 1x1
reduction to 32 channels, spatial embedding) and for SERL's layout without the reduction (before):
- bytes per version and publish-to-swap latency: learner process stamps and publishes PolicyWeights
  on the latched topic; the actor process receives it, verifies (sha256, shapes, finiteness) and
  swaps it in; latency = swap time - stamp. Whole state dicts in fp32 (the baseline) and fp16, and
  fp16 without the frozen encoder (what the learner publishes: each side builds it, checked by
  sha256), in the same run.
- control-loop period p50/p99 and missed ticks (a period over 1.5x the 100 ms) of a 10 Hz loop
  running CNN inference: idle (baseline), while weights arrive, while a learner process trains the
  same CNN (SAC updates) on the same CPU, and for ``--long-s`` seconds with a version every second
  with and without the learner training (on the other core: the actor pinned to the first).
Prints a table (median over versions/ticks) with ratios against the baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

TOPIC = "/bench/policy_weights"
MISSED_TICK_MS = 150.0  # a 10 Hz period this long means a tick came late enough to count as missed
CAMERAS = ("wrist", "front")


def spec(reduced_channels: int | None = None):
    """The pixel recipe's CNN policy for a 19-D state, 7-D action, 2-camera task (``reduced_channels``:
    override the recipe's)."""
    import dataclasses

    from user_learner.algo_config import load_algorithm_config

    policy = load_algorithm_config("rlpd_cnn").policy.for_task(19, 7, CAMERAS, (128, 128))
    return policy if reduced_channels is None else dataclasses.replace(policy, reduced_channels=reduced_channels)


def publisher(versions: int, dtype: str, period: float, leave_frozen_out: bool, reduced: int | None) -> None:
    """Publish ``versions`` weight versions of the CNN actor, one every ``period`` s (its trainable tensors
    only, with the frozen encoder's sha256, when ``leave_frozen_out``)."""
    import rclpy
    import torch

    from user_interfaces.msg import PolicyWeights
    from user_policies.policies.base import build_policy, frozen_state
    from user_policies.policy_spec import SPEC_METADATA_KEY
    from user_policies.weights_codec import FROZEN_METADATA_KEY, encode_weights, packet_to_msg, tensors_sha256
    from user_robot.nodes.qos import WEIGHTS

    rclpy.init()
    node = rclpy.create_node("bench_weights_publisher")
    pub = node.create_publisher(PolicyWeights, TOPIC, WEIGHTS)
    actor = build_policy(spec(reduced))
    frozen = frozen_state(actor)
    metadata = {SPEC_METADATA_KEY: spec(reduced).to_json()}
    if leave_frozen_out:
        metadata[FROZEN_METADATA_KEY] = tensors_sha256(frozen)
    time.sleep(2.0)  # discovery
    for version in range(1, versions + 1):
        with torch.no_grad():
            for p in actor.parameters():
                if p.requires_grad:  # (a learner changes only these)
                    p.add_(0.001)
        state = {k: v for k, v in actor.state_dict().items() if not (leave_frozen_out and k in frozen)}
        packet = encode_weights(
            state,
            policy_id="bench/cnn",
            version=version,
            embodiments=["franka_panda"],
            dtype=dtype,
            metadata=metadata,
        )
        msg = packet_to_msg(packet, PolicyWeights())
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        print(json.dumps({"published": version, "bytes": packet.byte_size}), flush=True)
        time.sleep(period)
    time.sleep(2.0)
    node.destroy_node()
    rclpy.try_shutdown()


def trainer(seconds: float, reduced: int | None) -> None:
    """A learner's CPU load: CNN SAC updates for ``seconds`` s."""
    import torch

    from user_learner.algorithms.sac import SAC, SACConfig

    torch.set_num_threads(1)
    agent = SAC(SACConfig(batch_size=16, critic_actor_ratio=1), spec(reduced))
    obs = {"state": torch.zeros(16, 19), **{c: torch.zeros(16, 128, 128, 3, dtype=torch.uint8) for c in CAMERAS}}
    batch = {
        "obs": obs,
        "next_obs": obs,
        "action": torch.zeros(16, 7),
        "reward": torch.zeros(16),
        "done": torch.zeros(16),
    }
    end = time.monotonic() + seconds
    updates = 0
    while time.monotonic() < end:
        agent.update(batch)
        updates += 1
    print(json.dumps({"updates": updates}), flush=True)


def actor(seconds: float, expect_versions: int, reduced: int | None) -> None:
    """The actor's threading: a 10 Hz CNN control loop on its own executor thread (``ControlLoop``), the
    weights subscription on the node's executor thread handing each message to a weights thread that
    verifies and swaps; prints timings as JSON."""
    import queue

    import rclpy
    import torch
    from rclpy.executors import SingleThreadedExecutor

    from user_interfaces.msg import PolicyWeights
    from user_policies.policies.base import build_policy
    from user_policies.policy_slot import PolicySlot
    from user_robot.nodes.qos import WEIGHTS
    from user_robot.nodes.runtime import ControlLoop

    torch.set_num_threads(1)
    rclpy.init()
    node = rclpy.create_node("bench_actor")
    slot = PolicySlot("franka_panda", 19, 7, CAMERAS)
    fallback = build_policy(spec(reduced)).eval()
    latencies: list[float] = []
    inbox: queue.Queue = queue.Queue()

    def load_weights() -> None:
        while True:
            msg = inbox.get()
            error = slot.load_message(msg)
            if error:
                print(json.dumps({"rejected": error}), flush=True)
                continue
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            latencies.append(node.get_clock().now().nanoseconds * 1e-9 - stamp)

    threading.Thread(target=load_weights, daemon=True).start()
    node.create_subscription(PolicyWeights, TOPIC, inbox.put, WEIGHTS)
    rng = np.random.default_rng(0)
    obs = {
        "state": np.zeros(19, np.float32),
        **{c: rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for c in CAMERAS},
    }
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        if slot.act(obs, deterministic=False) is None:
            fallback.act(obs)

    loop = ControlLoop(node, 0.1, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    loop.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end and (expect_versions == 0 or len(latencies) < expect_versions):
        time.sleep(0.05)
    loop.close()
    periods = np.diff(ticks) * 1e3
    print(json.dumps({"latencies": latencies, "periods_ms": periods.tolist(), "version": slot.version}), flush=True)
    executor.shutdown()
    spinner.join()
    node.destroy_node()
    rclpy.try_shutdown()


def spawn(*args: str, cores: set[int] | None = None) -> subprocess.Popen:
    """This script in another ``--role`` (on ``cores`` only, if given)."""
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)


def last_json(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def scenario(versions: int, dtype: str, train: bool, seconds: float, leave_frozen_out: bool = False,
             reduced: int | None = 0, period: float = 1.5, pin: bool = False) -> dict:
    """One run: actor (+ publisher if versions, one every ``period`` s) (+ trainer if train); ``reduced``
    the policy's ``reduced_channels`` (None: the recipe's); ``pin``: the actor on the first core, the
    publisher and trainer on the others (separate resources, as a robot PC and a learner machine)."""
    cores = sorted(os.sched_getaffinity(0))
    robot_cores, learner_cores = (set(cores[:1]), set(cores[1:])) if pin and len(cores) > 1 else (None, None)
    layout = [] if reduced is None else ["--reduced-channels", str(reduced)]
    act = spawn("--role", "actor", "--seconds", str(seconds), "--expect", str(versions), *layout, cores=robot_cores)
    time.sleep(3.0)
    pub = None
    if versions:
        pub = spawn("--role", "publisher", "--versions", str(versions), "--dtype", dtype, "--period", str(period),
                    *(["--leave-frozen-out"] if leave_frozen_out else []), *layout, cores=learner_cores)
    trn = spawn("--role", "trainer", "--seconds", str(seconds), *layout, cores=learner_cores) if train else None
    result = last_json(act, seconds + 120)
    if pub is not None:
        result["bytes"] = last_json(pub, versions * period + 60).get("bytes")
    if trn is not None:
        trn.kill()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="bench", choices=("bench", "actor", "publisher", "trainer"))
    parser.add_argument("--versions", type=int, default=8)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--leave-frozen-out", action="store_true", help="publisher: trainable tensors only")
    parser.add_argument("--reduced-channels", type=int, default=None, help="the policy's (default: the recipe's)")
    parser.add_argument("--period", type=float, default=1.5, help="publisher: seconds between versions")
    parser.add_argument("--long-s", type=float, default=120.0, help="the long loop scenario's seconds")
    args = parser.parse_args()
    reduced = args.reduced_channels
    if args.role == "publisher":
        return publisher(args.versions, args.dtype, args.period, args.leave_frozen_out, reduced)
    if args.role == "trainer":
        return trainer(args.seconds, reduced)
    if args.role == "actor":
        return actor(args.seconds, args.expect, reduced)

    from rich.console import Console
    from rich.table import Table

    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    versions = args.versions
    long_versions = int(args.long_s)
    long_s = args.long_s + 10.0
    runs = {
        "idle loop": scenario(0, "float32", train=False, seconds=60.0),
        "idle loop + learner training (no weights)": scenario(0, "float32", train=True, seconds=60.0),
        "whole state, fp32 (SERL layout)": scenario(versions, "float32", train=False, seconds=60.0),
        "fp16, frozen encoder left out (SERL layout)": scenario(versions, "float16", False, 60.0, True),
        "fp16, frozen encoder left out (SERL layout) + learner training": scenario(versions, "float16", True, 60.0,
                                                                                  True),
        "fp16, frozen left out, recipe (32-channel reduction)": scenario(versions, "float16", False, 60.0, True,
                                                                         reduced=None),
        "... + learner training": scenario(versions, "float16", True, 60.0, True, reduced=None),
        f"recipe, a version every 1 s for {args.long_s:.0f} s": scenario(
            long_versions, "float16", False, long_s, True, reduced=None, period=1.0),
        f"recipe, a version every 1 s for {args.long_s:.0f} s + learner training on the other core": scenario(
            long_versions, "float16", True, long_s, True, reduced=None, period=1.0, pin=True),
    }
    fp32 = runs["whole state, fp32 (SERL layout)"]
    base_lat = np.median(fp32["latencies"]) if fp32.get("latencies") else float("nan")
    base_p99 = np.percentile(runs["idle loop"]["periods_ms"], 99)
    table = Table(title="CNN policy weight sync (2x128x128 cameras, ResNet-10), 10 Hz control loop")
    for col in (
        "scenario",
        "MB per version",
        "versions swapped",
        "publish→swap median ms",
        "vs fp32",
        "loop p50 ms",
        "loop p99 ms",
        "p99 vs idle",
        "missed ticks",
    ):
        table.add_column(col)
    for name, r in runs.items():
        lat = r.get("latencies") or []
        med = np.median(lat) * 1e3 if lat else float("nan")
        periods = r.get("periods_ms") or [float("nan")]
        p99 = np.percentile(periods, 99)
        table.add_row(
            name,
            f"{r['bytes'] / 1e6:.1f}" if r.get("bytes") else "-",
            str(len(lat)),
            f"{med:.0f}" if lat else "-",
            f"{med / (base_lat * 1e3):.2f}x" if lat else "-",
            f"{np.percentile(periods, 50):.1f}",
            f"{p99:.1f}",
            f"{p99 / base_p99:.2f}x",
            f"{int(np.sum(np.asarray(periods) > MISSED_TICK_MS))}/{len(periods)}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
