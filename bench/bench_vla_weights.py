"""VLA weights on the wire: the whole model against a delta of what trains, over real DDS, in two processes.

    python bench/bench_vla_weights.py [--versions 6] [--period 2] [--set d_model=256 ...]

The ``vla`` policy (default size, ~5.7M parameters; 2 cameras 128x128, a 64-byte instruction, chunks
of 10) is cloned once into a local base file (``policy.safetensors``, what ``user-rl pretrain``
writes), which both processes read. A learner process (:class:`LearnerCore`, the ``hg_dagger``
recipe with the VLA) publishes ``--versions`` versions, one every ``--period`` s, as the learner
node does (payloads over ``publish_part_mb`` in 16 parts); an actor process joins the parts,
verifies and swaps them into a :class:`PolicySlot` (building the network, and loading the base, at
the first). Settings: ``trainable: all`` (the whole model every version: the baseline), ``expert``
(the action expert only) and ``lora`` (adapters and the action expert), the last two keyed by the
sha256 of the frozen base. Prints MB per version, parts, versions swapped, and the publish→swap
latency (the first version's, which builds the network, apart from the median of the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TOPIC = "/bench/vla_weights"
STATE = 19


def vla_config(root: Path, trainable: str, options: dict, base: Path | None) -> Path:
    """A config copy whose hg_dagger recipe trains the VLA as ``trainable`` (on ``base`` when given)."""
    from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy

    os.environ.pop(CONFIG_DIR_ENV, None)  # (a copy of the repository's config, not of another copy)
    policy = {"policy.kind": "vla", "policy.chunk_size": 10, "policy.options": {**options, "trainable": trainable}}
    if base is not None:
        policy["policy.pretrained_policy"] = str(base)
    return write_config_copy(root / f"config_{trainable}", {
        "algorithms/hg_dagger": policy,
        "tasks/pick_and_place": {"observation.state": ["tcp_pose", "tcp_vel", "gripper", "wrench", "instruction"]},
    })


def learner_core(log_dir: Path, obs: str = "pixels"):
    from user_learner.learner_core import LearnerCore
    from user_robot.task_config import load_task

    return LearnerCore(load_task("pick_and_place"), "hg_dagger", obs, ["franka_panda"], log_dir, tensorboard=False)


def publisher(log_dir: Path, versions: int, period: float) -> None:
    """The learner's side: perturb what trains, publish a version (in parts if large), every ``period`` s."""
    import rclpy
    import torch

    from user_interfaces.msg import PolicyWeights
    from user_policies.weights_codec import packet_to_msg, split_message
    from user_robot.nodes.qos import WEIGHTS, WEIGHTS_PARTS

    core = learner_core(log_dir)
    rclpy.init()
    node = rclpy.create_node("bench_vla_publisher")
    pub = node.create_publisher(PolicyWeights, TOPIC, WEIGHTS)
    time.sleep(3.0)  # discovery
    for _ in range(versions):
        with torch.no_grad():
            for p in core.algorithm.policy.parameters():
                if p.requires_grad:
                    p.add_(1e-3)
        msg = packet_to_msg(core.weights_packet(), PolicyWeights())
        msg.header.stamp = node.get_clock().now().to_msg()
        parts = split_message(msg, int(core.cfg.publish_part_mb * 1e6), WEIGHTS_PARTS)
        for part in parts:
            pub.publish(part)
        print(json.dumps({"bytes": msg.byte_size, "parts": len(parts)}), flush=True)
        time.sleep(period)
    time.sleep(3.0)
    node.destroy_node()
    rclpy.try_shutdown()


def actor(seconds: float, expect: int) -> None:
    """The actor's side: join, verify and swap every version; prints the latencies as JSON."""
    import queue

    import rclpy
    import torch
    from rclpy.executors import SingleThreadedExecutor

    from user_interfaces.msg import PolicyWeights
    from user_policies.observation import INSTRUCTION_BYTES
    from user_policies.policy_slot import PolicySlot
    from user_policies.weights_codec import WeightsParts
    from user_robot.nodes.qos import WEIGHTS

    torch.set_num_threads(1)
    rclpy.init()
    node = rclpy.create_node("bench_vla_actor")
    slot = PolicySlot("franka_panda", STATE + INSTRUCTION_BYTES, 7, ("wrist", "front"))
    parts, inbox, latencies, errors = WeightsParts(), queue.Queue(), [], []

    def on_weights(msg) -> None:
        whole = parts.add(msg)
        if whole is not None:
            inbox.put(whole)

    def load() -> None:
        while True:
            msg = inbox.get()
            error = slot.load_message(msg)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            (errors.append(error) if error else latencies.append(node.get_clock().now().nanoseconds * 1e-9 - stamp))

    threading.Thread(target=load, daemon=True).start()
    node.create_subscription(PolicyWeights, TOPIC, on_weights, WEIGHTS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(latencies) + len(errors) < expect:
        time.sleep(0.05)
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)
    executor.shutdown()
    rclpy.try_shutdown()


def _last_json(proc: subprocess.Popen, timeout: float) -> list[dict]:
    out, _ = proc.communicate(timeout=timeout)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="bench", choices=("bench", "publisher", "actor"))
    parser.add_argument("--versions", type=int, default=6)
    parser.add_argument("--period", type=float, default=2.0)
    parser.add_argument("--log-dir", default="")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a vla option (int)")
    args = parser.parse_args()
    if args.role == "publisher":
        return publisher(Path(args.log_dir), args.versions, args.period)
    if args.role == "actor":
        return actor(args.seconds, args.versions)

    from rich.console import Console
    from rich.table import Table
    from safetensors.torch import save_file

    from user_robot.config_loader import CONFIG_DIR_ENV

    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    options = {key: int(value) for key, value in (item.split("=", 1) for item in args.set)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_vla_weights_") as tmp:
        root = Path(tmp)
        os.environ[CONFIG_DIR_ENV] = str(vla_config(root, "all", options, None))
        base = root / "policy.safetensors"  # the clone every side holds locally
        clone = learner_core(root / "clone").algorithm.policy
        save_file({k: v.contiguous() for k, v in clone.state_dict().items()}, str(base))
        params = sum(p.numel() for p in clone.parameters())
        for trainable in ("all", "expert", "lora"):
            os.environ[CONFIG_DIR_ENV] = str(vla_config(root, trainable, options, None if trainable == "all" else base))
            runs = [sys.executable, __file__, "--versions", str(args.versions)]
            act = subprocess.Popen([*runs, "--role", "actor", "--seconds", str(args.seconds)], stdout=subprocess.PIPE,
                                   text=True)
            time.sleep(2.0)
            pub = subprocess.Popen([*runs, "--role", "publisher", "--period", str(args.period), "--log-dir",
                                    str(root / trainable)], stdout=subprocess.PIPE, text=True)
            sent = _last_json(pub, args.versions * args.period + 120)
            got = _last_json(act, args.seconds + 30)[-1]
            rows.append((trainable, sent[0], got))
            print(f"{trainable}: {sent[0]['bytes'] / 1e6:.1f} MB, {len(got['latencies'])} swapped, errors "
                  f"{got['errors'][:1]}", flush=True)

    table = Table(title=f"vla weights ({params / 1e6:.1f}M parameters), learner → actor over DDS, "
                        f"{args.versions} versions every {args.period:.0f} s")
    for column in ("trains", "MB per version", "parts", "versions swapped", "first publish→swap",
                   "median publish→swap (rest)", "bytes vs all"):
        table.add_column(column)
    full = rows[0][1]["bytes"]
    names = {"all": "all (whole model: baseline)", "expert": "action expert (delta)", "lora": "LoRA + expert (delta)"}
    for trainable, sent, got in rows:
        lat = np.asarray(got["latencies"]) * 1e3
        table.add_row(names[trainable], f"{sent['bytes'] / 1e6:.2f}", str(sent["parts"]),
                      f"{len(lat)}/{args.versions}", f"{lat[0]:.0f} ms" if len(lat) else "-",
                      f"{np.median(lat[1:]):.0f} ms" if len(lat) > 1 else "-", f"{sent['bytes'] / full:.2f}x")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
