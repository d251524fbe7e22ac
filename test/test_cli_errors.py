"""A user's mistake gets one clear line and exit code 2 from ``user-rl``, before any node starts.

Each case runs the real CLI in its own process; a node that had started would have written its log
under ``--log-dir``, which must stay empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from user_learner.bags.transition_bag import Episode, Step, TransitionBagWriter, transition_message
from user_robot.config_loader import write_config_copy
from user_robot.contracts import TRANSITIONS_TOPIC


def user_rl(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``user-rl`` with ``args``; its exit code and its whole output."""
    logs = tmp_path / "logs"
    flags = ("--log-dir", str(logs)) if args[0] in ("train", "sim", "collect") else ()
    out = subprocess.run(
        [sys.executable, "-m", "user_learner.cli.main", *args, *flags],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=tmp_path,
    )
    assert not (logs / "ros").exists(), "a node was started"
    return out.returncode, out.stdout + out.stderr


def _bag(path: Path, wrecked: bool = False) -> Path:
    """One complete peg-insertion episode with a 4-D state (the task's is 18-D); ``wrecked``: cut after 6 bytes."""
    import numpy as np

    with TransitionBagWriter(path) as writer:
        steps = [Step(stamp_ns=i, step=i, state=np.zeros(4, np.float32), images={},
                      action=np.zeros(0 if i == 3 else 6, np.float32), truncated=i == 3) for i in range(4)]
        ep = Episode("robot_0", "sim_panda", "peg_insertion", "e", steps)
        for step in steps:
            writer.write(TRANSITIONS_TOPIC, transition_message(ep, step))
    if wrecked:
        (mcap,) = path.glob("*.mcap")
        mcap.write_bytes(mcap.read_bytes()[:6])
    return path


CASES = {
    "misspelled task": (["train", "--task", "peg_insrtion"], "no task named 'peg_insrtion' (known: cap_tightening"),
    "unknown robot": (["train", "--task", "peg_insertion", "--robot", "ur5"], "no robot named 'ur5' (known:"),
    "missing demos": (["train", "--task", "peg_insertion", "--demos", "/nonexistent"], "/nonexistent: no such"),
    "missing bag": (["bag", "info", "/nonexistent"], "/nonexistent: no such recording"),
    "episodes on the learner side": (["train", "--task", "peg_insertion", "--side", "learner", "--episodes", "5"],
                                     "--episodes counts the episodes of the robot side"),
    "recording on the learner side": (["train", "--task", "peg_insertion", "--side", "learner", "--record", "run"],
                                     "--record records on the robot side (where the episodes are)"),
    "discovery server without a port": (["train", "--task", "peg_insertion", "--discovery-server", "10.0.0.1"],
                                        "--discovery-server: expected HOST:PORT[;HOST:PORT], got '10.0.0.1'"),
    "no checkpoint to start from": (["train", "--task", "peg_insertion", "--init", "/nonexistent"],
                                    "--init: no checkpoint in /nonexistent"),
    "a real robot for the sim": (["collect", "--task", "peg_insertion", "--robot", "arx", "--out", "x"],
                                 "robot 'arx' is real hardware; this command runs the sim cell (sim robots: sim, "
                                 "sim_arx)"),
    "comma-separated demos": (["train", "--task", "peg_insertion", "--demos", "/nonexistent_a,/nonexistent_b"],
                              "/nonexistent_a: no such"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_one_line_and_exit_code_2(case: str, tmp_path: Path) -> None:
    args, want = CASES[case]
    code, out = user_rl(args, tmp_path)
    assert code == 2, out
    (line,) = [ln for ln in out.splitlines() if ln.strip()]
    assert line.startswith(f"user-rl {args[0]}: error: ") and want in line, out
    assert "Traceback" not in out


def test_config_mistakes_name_the_file_and_key_before_any_node_starts(tmp_path: Path) -> None:
    bad_task = write_config_copy(tmp_path / "cfg_task", {"tasks/peg_insertion": {"action.translaton_scale": 0.01}})
    code, out = user_rl(["train", "--task", "peg_insertion"], tmp_path, {"USER_CONFIG_DIR": str(bad_task)})
    assert code == 2 and "Traceback" not in out, out
    assert "peg_insertion.yaml: key 'action.translaton_scale': unknown key (allowed: " in out

    for change, want in (({"observation.state": ["tcp_pose", "tcp_vell"]},
                          "key 'observation': unknown state key 'tcp_vell' (known: tcp_pose, tcp_vel,"),
                         ({"control_rate_hz": 0}, "control_rate_hz must be positive"),
                         ({"episode_length": -5}, "episode_length at least 1")):
        bad = write_config_copy(tmp_path / "cfg_value", {"tasks/peg_insertion": change})
        code, out = user_rl(["train", "--task", "peg_insertion"], tmp_path, {"USER_CONFIG_DIR": str(bad)})
        assert code == 2 and "Traceback" not in out and "peg_insertion.yaml" in out and want in out, out

    bad_algo = write_config_copy(tmp_path / "cfg_algo", {"algorithms/sac": {"sac.batch_sise": 8}})
    code, out = user_rl(["train", "--task", "peg_insertion", "--algo", "sac"], tmp_path,
                        {"USER_CONFIG_DIR": str(bad_algo)})
    assert code == 2 and "sac.yaml: key 'sac.batch_sise'" in out, out

    for command in ("info", "train"):  # (train's flags read the config directory for their choices)
        code, out = user_rl([command, "--task", "peg_insertion"][: 1 + 2 * (command == "train")], tmp_path,
                            {"USER_CONFIG_DIR": str(tmp_path / "nonexistent")})
        assert code == 2 and "Traceback" not in out, out
        assert out.splitlines()[-1].startswith(f"user-rl {command}: error: "), out
        assert "$USER_CONFIG_DIR is not a directory" in out.splitlines()[-1], out


def test_help_lists_every_command_and_each_command_has_its_own() -> None:
    from user_learner.cli.main import COMMANDS

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "user_learner.cli.main", *args], capture_output=True, text=True,
                              timeout=120)

    for top in (run("--help"), run()):
        assert "Traceback" not in top.stderr, top.stderr
        assert all(f"    {name}" in top.stdout for name in COMMANDS), top.stdout
    assert "success + 95% CI" in run("--help").stdout
    for name in COMMANDS:
        sub = run(name, "--help")
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: user-rl {name}"), sub.stdout + sub.stderr


NUMBERS = {
    "no steps": (["train", "--task", "peg_insertion", "--steps", "-3"], "argument --steps: expected an integer >= 1"),
    "negative episodes": (["train", "--task", "peg_insertion", "--episodes", "-1"],
                          "argument --episodes: expected an integer >= 0"),
    "zero eval episodes": (["eval", "--task", "peg_insertion", "--checkpoint", "x", "--episodes", "0"],
                           "argument --episodes: expected an integer >= 1"),
    "a timeout of nan": (["sim", "--task", "peg_insertion", "--timeout", "nan"],
                         "argument --timeout: expected seconds >= 0"),
    "a stopped sim": (["collect", "--task", "peg_insertion", "--out", "x", "--real-time-factor", "0"],
                      "argument --real-time-factor: expected a number > 0"),
    "all held out": (["pretrain", "--task", "peg_insertion", "--demos", "x", "--val-fraction", "1"],
                     "argument --val-fraction: expected a share in [0, 1)"),
    "a word for a count": (["reward", "train", "--task", "t", "--bags", "b", "--out", "o", "--epochs", "ten"],
                           "argument --epochs: expected an integer, got 'ten'"),
    "a port out of range": (["discovery-server", "--port", "70000"], "expected an integer in [1, 65535]"),
}


@pytest.mark.parametrize("case", list(NUMBERS))
def test_a_number_out_of_range_is_refused_by_its_flag(case: str, tmp_path: Path) -> None:
    args, want = NUMBERS[case]
    code, out = user_rl(args, tmp_path)
    assert code == 2 and "Traceback" not in out, out
    assert out.splitlines()[-1].startswith(f"user-rl {args[0]}") and want in out.splitlines()[-1], out


def test_a_domain_id_fast_dds_cannot_map_is_named(tmp_path: Path) -> None:
    from user_robot.ros_domain import domain_id_problem

    for value in ("240", "abc"):
        code, out = user_rl(["info"], tmp_path, {"ROS_DOMAIN_ID": value})
        assert code == 2 and "Traceback" not in out, out
        assert f"ROS_DOMAIN_ID must be an integer in [0, 232] (Fast DDS maps it to UDP ports; 0-101 is safe on " \
               f"Linux), got {value!r}" in out, out
    assert domain_id_problem({"ROS_DOMAIN_ID": "232"}) == domain_id_problem({}) == ""
    for node in ("user_robot.nodes.sim_cell", "user_learner.nodes.learner"):  # (own main, runtime.run)
        proc = subprocess.run([sys.executable, "-m", node], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ROS_DOMAIN_ID": "240"})
        assert proc.returncode == 1 and "ROS_DOMAIN_ID must be an integer in [0, 232]" in proc.stderr, proc.stderr


def test_help_shows_the_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "user_learner.cli.main", "train", "--help"], capture_output=True,
                         text=True, timeout=120).stdout
    flat = " ".join(out.split())  # (help wraps lines)
    assert "the run ends with the episode that reaches them); --side learner: transitions to receive (default: " \
        "15000)" in flat, out
    assert "(default: rlpd)" in flat and "(default: )" not in flat and "(default: None)" not in flat, out


def test_an_outside_policy_that_cannot_run_is_named_before_any_node_starts(tmp_path: Path) -> None:
    examples = str(Path(__file__).resolve().parents[1] / "examples")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [examples, os.environ.get("PYTHONPATH")]))}
    demos = str(_bag(tmp_path / "demos.mcap"))
    fits = {"state_dim": 18, "action_dim": 6, "chunk_size": 4}
    for i, (options, want) in enumerate((
        ({"module": "no_such_package.models:Net"}, "options.module 'no_such_package.models:Net' cannot be imported"),
        ({"module": "tiny_chunker:TinyChunker", "config": {"state_dim": 18}}, "options.config does not build"),
        ({"module": "tiny_chunker:TinyChunker", "config": fits, "weights": "missing.safetensors"},
         "options.weights: no such file 'missing.safetensors'"),
        ({"module": "tiny_chunker:TinyChunker", "config": {**fits, "state_dim": 7}},
         "tiny_chunker:TinyChunker fails on this task's observation (state (18,); action 6 x chunk 4): RuntimeError"),
        ({"module": "tiny_chunker:TinyChunker", "config": {**fits, "chunk_size": 2}},
         "returned chunks of shape (1, 2, 6), expected (1, 4, 6)"),
    )):
        recipe = {"policy.kind": "external", "policy.chunk_size": 4, "policy.options": options}
        config = write_config_copy(tmp_path / f"config_{i}", {"algorithms/hg_dagger": recipe})
        for args in (["train", "--task", "peg_insertion", "--algo", "hg_dagger"],
                     ["pretrain", "--task", "peg_insertion", "--demos", demos]):
            code, out = user_rl(args, tmp_path, {**env, "USER_CONFIG_DIR": str(config)})
            assert code == 2 and "Traceback" not in out, out
            assert "hg_dagger.yaml: key 'policy': " in out and want in out and "(task peg_insertion)" in out, out


def test_unreadable_demos_are_named(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "wreck", wrecked=True)
    code, out = user_rl(["train", "--task", "peg_insertion", "--demos", str(bag)], tmp_path)
    assert code == 2 and f"{bag}: not a readable recording" in out and "Traceback" not in out, out
    code, out = user_rl(["bag", "info", str(bag)], tmp_path)
    assert code == 2 and out.startswith("user-rl bag: error: ") and "not a readable recording" in out, out


def test_demos_of_another_size_are_named(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "small")
    code, out = user_rl(["train", "--task", "peg_insertion", "--demos", str(bag)], tmp_path)
    assert code == 2 and "Traceback" not in out, out
    assert f"{bag}: episode e (task peg_insertion) has state 4 / action 6, task peg_insertion takes state 18 / " \
           "action 6" in out, out


def test_eval_observes_what_the_checkpoint_was_trained_on(tmp_path: Path) -> None:
    from user_learner.evaluation import checkpoint_obs
    from user_learner.learner_core import LearnerCore
    from user_robot.task_config import load_task

    task = load_task("peg_insertion")
    core = LearnerCore(task, "sac", "state", ["franka_panda"], tmp_path / "run", tensorboard=False)
    saved = core.save()
    assert checkpoint_obs(tmp_path / "run") == "state"  # (eval's default: no --obs to remember)
    code, out = user_rl(["eval", "--task", "peg_insertion", "--checkpoint", str(tmp_path / "run"), "--obs", "pixels",
                         "--log-dir", str(tmp_path / "logs")], tmp_path)
    assert code == 2 and f"{saved}: its policy observes state, not --obs pixels" in out, out  # (the one it read)


@pytest.mark.parametrize(("task", "named", "want"), [
    ("charger_plugging", True, "a policy of task peg_insertion, not of charger_plugging"),
    ("pick_and_place", False, "its policy takes state 18 / action 6, task pick_and_place has state 26 / action 7"),
])
def test_eval_refuses_a_checkpoint_of_another_task(task: str, named: bool, want: str, tmp_path: Path) -> None:
    import json

    from user_learner.learner_core import LearnerCore
    from user_robot.task_config import load_task

    saved = LearnerCore(load_task("peg_insertion"), "sac", "state", ["franka_panda"], tmp_path / "run",
                        tensorboard=False).save()
    if not named:  # (a checkpoint from before they named their task: told by its sizes)
        meta = json.loads((saved / "meta.json").read_text())
        del meta["metadata"]["task"]
        (saved / "meta.json").write_text(json.dumps(meta))
    code, out = user_rl(["eval", "--task", task, "--checkpoint", str(tmp_path / "run"), "--log-dir",
                         str(tmp_path / "logs")], tmp_path)
    assert code == 2 and want in out and "Traceback" not in out, out
