"""Fast DDS transports on one machine: shared memory and UDP loopback, at the sizes USER's topics carry.

    python bench/bench_transport.py [--repeats 40] [--transports DEFAULT,UDPv4]

For each transport (Fast DDS's ``FASTDDS_BUILTIN_TRANSPORTS``: ``DEFAULT`` is shared memory with UDP
beside it, what USER's nodes use on one machine; ``UDPv4`` is UDP alone, e.g. for containers that share no
``/dev/shm``), two processes on
their own ROS domain play ping-pong with ``sensor_msgs/Image`` messages of each size: ``/clock``-sized,
one 128x128 camera image, a pixel transition (two of them), the CNN policy's fp16 weights (~2 MB) and a
20 MB message. A message is sent back unchanged; the one-way latency is half the round trip. Prints a
table (median of ``--repeats`` round trips per size, after 3 warm-up ones) with each transport's ratio
against the first one, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = {"/clock (16 B)": 16, "one camera image (49 KB)": 128 * 128 * 3, "pixel transition (98 KB)": 2 * 128 * 128 * 3,
         "CNN weights fp16 (2 MB)": 2_000_000, "large message (20 MB)": 20_000_000}
WARMUP = 3


def echo() -> None:
    """Send every ``/ping`` back on ``/pong``."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_echo")
    pong = node.create_publisher(Image, "/pong", QoSProfile(depth=1))
    node.create_subscription(Image, "/ping", pong.publish, QoSProfile(depth=1))
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):  # (ended by the measuring process)
        rclpy.spin(node)


def ping(repeats: int) -> None:
    """Round trips per size; prints ``{size name: [seconds, ...]}`` as JSON."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_transport_ping")
    back = threading.Event()
    expected = [""]

    def on_pong(msg: Image) -> None:
        if msg.header.frame_id == expected[0]:
            back.set()

    publisher = node.create_publisher(Image, "/ping", QoSProfile(depth=1))
    node.create_subscription(Image, "/pong", on_pong, QoSProfile(depth=1))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() == 0 or node.count_publishers("/pong") == 0:
        if time.monotonic() > deadline:
            raise SystemExit("the echoing process was not discovered within 30 s")
        time.sleep(0.05)
    results: dict[str, list[float]] = {}
    for name, size in SIZES.items():
        msg = Image()
        msg.data = bytes(size)
        times = []
        for i in range(WARMUP + repeats):
            msg.header.frame_id = expected[0] = f"{name}/{i}"
            back.clear()
            start = time.perf_counter()
            publisher.publish(msg)
            if not back.wait(10.0):
                raise SystemExit(f"no answer to {name} #{i} within 10 s")
            if i >= WARMUP:
                times.append(time.perf_counter() - start)
        results[name] = times
    print(json.dumps(results))


def measure(transport: str, repeats: int, domain: int) -> dict[str, list[float]]:
    """One transport's round trips, its two processes on ``domain``."""
    env = {**os.environ, "FASTDDS_BUILTIN_TRANSPORTS": transport, "ROS_DOMAIN_ID": str(domain),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    responder = subprocess.Popen([sys.executable, __file__, "--role", "echo"], env=env)
    try:
        out = subprocess.run([sys.executable, __file__, "--role", "ping", "--repeats", str(repeats)], env=env,
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"{transport}: the pinging process failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        responder.terminate()
        responder.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--transports", default="DEFAULT,UDPv4",
                        help="FASTDDS_BUILTIN_TRANSPORTS values, the baseline first")
    parser.add_argument("--role", choices=("echo", "ping"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "echo":
        return echo()
    if args.role == "ping":
        return ping(args.repeats)
    transports = args.transports.split(",")
    base_domain = int(os.environ.get("ROS_DOMAIN_ID", "0")) or 150
    medians = {t: {name: statistics.median(v) / 2 for name, v in measure(t, args.repeats, base_domain + i).items()}
               for i, t in enumerate(transports)}
    head = "| message | " + " | ".join(f"{t} one-way ms" for t in transports) + " | " + " | ".join(
        f"{t} / {transports[0]}" for t in transports[1:]) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name in SIZES:
        cells = [f"{medians[t][name] * 1e3:.3f}" for t in transports]
        ratios = [f"{medians[t][name] / medians[transports[0]][name]:.2f}x" for t in transports[1:]]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")
    print(f"(median of {args.repeats} round trips per size, halved; two processes per transport, one machine)")


if __name__ == "__main__":
    main()
