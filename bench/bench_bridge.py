"""The arm bridge under driver load: its tick rate and CPU at 100–500 Hz driver state, per executor.

The bridge (``user_robot.nodes.arm_bridge``, sim robot config: 30 Hz tick) runs against the
franka_ros2 stand-in (``test/driver_standins.py``: pose, wrench, joint and gripper states at the
given rate), each in its own process. The node runs on its own single-threaded executor, as it
ships; the baseline is the same node spun by rclpy's multi-threaded executor (2 threads, as it ran
before). Measured over a window after warm-up: the bridge process's CPU (user + system, % of one
core), its tick rate and the driver-state age it reports on /diagnostics (median of the window).

    python bench/bench_bridge.py [--rates 100,250,500] [--repeats 2] [--window 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "test" / "driver_standins.py"
NS = f"/bench_bridge_{os.getpid()}"
SPIN = """
import sys
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from user_robot.nodes.arm_bridge import ArmBridge
rclpy.init(args=sys.argv[2:])
node = ArmBridge()
executor = MultiThreadedExecutor(num_threads=2) if sys.argv[1] == "multi" else SingleThreadedExecutor()
executor.add_node(node)
try:
    executor.spin()
except KeyboardInterrupt:
    pass
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(rate_hz: float, executor: str, window_s: float) -> dict[str, float]:
    """One measurement: stand-in at ``rate_hz``, bridge on ``executor``; CPU %, tick Hz, state age ms."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from user_robot.diagnostics import values_of

    env = {**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    standin = subprocess.Popen([sys.executable, str(STANDIN), "franka", NS, "0.55", "0", "0.11", "1", "0", "0", "0",
                                str(rate_hz)], **quiet)
    ros_args = ["--ros-args", "-r", f"__ns:={NS}", "-r", "__node:=arm_bridge", "-p", "robot:=sim"]
    bridge = subprocess.Popen([sys.executable, "-c", SPIN, executor, *ros_args], **quiet)
    rclpy.init()
    node = rclpy.create_node("bench_bridge_probe")
    diags: list[dict[str, str]] = []
    name = f"{NS.strip('/')}/arm_bridge"
    node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: diags.append(values_of(m)) if m.status[0].name == name else None, 10
    )
    spin = SingleThreadedExecutor()
    spin.add_node(node)
    try:
        deadline = time.monotonic() + 30.0
        while not diags and time.monotonic() < deadline:  # started and ticking
            spin.spin_once(timeout_sec=0.1)
        warm = time.monotonic() + 3.0
        while time.monotonic() < warm:
            spin.spin_once(timeout_sec=0.1)
        diags.clear()
        cpu0, t0 = cpu_seconds(bridge.pid), time.monotonic()
        while time.monotonic() - t0 < window_s:
            spin.spin_once(timeout_sec=0.1)
        cpu = (cpu_seconds(bridge.pid) - cpu0) / (time.monotonic() - t0) * 100.0
    finally:
        for proc in (bridge, standin):
            proc.send_signal(2)
            proc.wait(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown()
    rates = [float(d["loop_rate_hz"]) for d in diags] or [0.0]
    ages = [float(d["state_age_ms"]) for d in diags] or [float("nan")]
    return {"cpu": cpu, "tick_hz": statistics.median(rates), "age_ms": statistics.median(ages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,250,500", help="driver state rates (Hz) to measure")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per run")
    args = parser.parse_args()
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        result = {}
        for executor in ("single", "multi"):
            runs = [run_once(rate, executor, args.window) for _ in range(args.repeats)]
            result[executor] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append((rate, result))
    print(f"\narm bridge (sim config, 30 Hz tick), median of {args.repeats} x {args.window:.0f} s")
    print(f"{'driver Hz':>9} | {'executor':>8} | {'CPU %':>6} | {'tick Hz':>7} | {'state age ms':>12} | CPU vs multi")
    for rate, result in rows:
        for executor in ("single", "multi"):
            r = result[executor]
            ratio = r["cpu"] / result["multi"]["cpu"] if result["multi"]["cpu"] else float("nan")
            print(f"{rate:>9.0f} | {executor:>8} | {r['cpu']:>6.1f} | {r['tick_hz']:>7.1f} | {r['age_ms']:>12.1f} | "
                  f"{ratio:.2f}x")


if __name__ == "__main__":
    main()
