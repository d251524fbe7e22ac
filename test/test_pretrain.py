"""``user-rl pretrain``: behaviour cloning from a real rosbag2 recording, and ``--init`` from its checkpoint."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from user_learner.bags.transition_bag import Episode, Step, TransitionBagWriter
from user_learner.cli.main import main
from user_learner.evaluation import load_checkpoint_algorithm
from user_learner.learner_core import LearnerCore
from user_learner.pretrain import split_episodes
from user_policies.observation import state_dim
from user_robot.task_config import load_task

TASK = load_task("peg_insertion")


def expert_action(state: np.ndarray) -> np.ndarray:
    """What the recorded 'human' did: a smooth function of the state."""
    a = np.zeros(TASK.action.dims, np.float32)
    a[:3] = 0.7 * np.tanh(state[:3] - state[3:6])
    return a


def demo_episode(n: int, seed: int, task: str = TASK.name, code: tuple[float, ...] = ()) -> Episode:
    """``n`` steps of the expert; ``code``: the task's one-hot appended to each state (a multi-task demo)."""
    rng = np.random.default_rng(seed)
    steps = []
    for i in range(n + 1):
        state = np.concatenate([rng.normal(size=state_dim(TASK)), code]).astype(np.float32)
        last = i == n
        steps.append(Step(
            stamp_ns=10**18 + i * 10**8, step=i, state=state, images={},
            action=np.zeros(0, np.float32) if last else expert_action(state),
            reward=float(last), terminated=last, end_reason=1 if last else 0, intervened=not last,
        ))
    return Episode("robot_0", "franka_panda", task, f"demo-{seed}", steps)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("demos") / "demos.mcap"
    with TransitionBagWriter(path) as writer:
        for seed in range(10):
            writer.write_episode(demo_episode(30, seed))
    return str(path)


def test_the_split_holds_out_whole_episodes_and_keeps_one_to_train_on() -> None:
    episodes = [demo_episode(3, s) for s in range(10)]
    train, val = split_episodes(episodes, 0.2, seed=1)
    assert len(train) == 8 and len(val) == 2
    assert {e.episode_id for e in train}.isdisjoint(e.episode_id for e in val)
    assert split_episodes(episodes, 0.2, seed=1) == (train, val)  # seeded
    assert split_episodes(episodes[:1], 0.5, seed=0) == (episodes[:1], [])


def test_pretrain_clones_the_demos_and_train_init_starts_from_the_clone(demos, tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    log_dir = tmp_path / "bc"
    code = main(["pretrain", "--task", TASK.name, "--demos", demos, "--updates", "300", "--log-dir", str(log_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    line = out.strip().splitlines()[-1]
    assert "episodes=8+2 transitions=240 updates=300" in line, line
    before, after = map(float, re.search(r"val_action_error=([\d.]+)->([\d.]+)", line).groups())
    assert after < 0.5 * before, line  # held-out episodes: it learned the mapping, not the rows

    core = LearnerCore(TASK, "hg_dagger", "state", ["franka_panda"], tmp_path / "online", tensorboard=False)
    used = core.init_policy(log_dir)
    assert used.parent == log_dir / "checkpoints"
    state = {"state": demo_episode(1, 99).steps[0].state}
    clone = load_checkpoint_algorithm(log_dir).policy
    np.testing.assert_array_equal(core.algorithm.policy.act(state, deterministic=True),
                                  clone.act(state, deterministic=True))

    flow = LearnerCore(TASK, "hg_dagger", "state", ["franka_panda"], tmp_path / "flow", tensorboard=False,
                       policy="flow")
    with pytest.raises(ValueError, match="is not this learner's"):
        flow.init_policy(log_dir)


def test_pretrain_names_a_missing_recording(tmp_path, capsys) -> None:
    missing = tmp_path / "none.mcap"
    assert main(["pretrain", "--task", TASK.name, "--demos", str(missing), "--log-dir", str(tmp_path)]) == 2
    assert f"{missing}: no such recording" in capsys.readouterr().err


def test_pretrain_clones_one_policy_for_several_tasks_and_keeps_their_list(tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    path = tmp_path / "both.mcap"
    with TransitionBagWriter(path) as writer:
        for seed in range(4):
            writer.write_episode(demo_episode(20, seed, "peg_insertion", (1.0, 0.0)))
            writer.write_episode(demo_episode(20, 100 + seed, "charger_plugging", (0.0, 1.0)))
    log_dir = tmp_path / "bc"
    both = "peg_insertion,charger_plugging"
    code = main(["pretrain", "--tasks", both, "--demos", str(path), "--updates", "20", "--log-dir", str(log_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"pretrain task=peg_insertion,charger_plugging .* episodes=6\+2 transitions=120", out), out
    assert (log_dir / "policy.safetensors").is_file()
    from user_learner.evaluation import checkpoint_tasks

    assert checkpoint_tasks(log_dir) == ("peg_insertion", "charger_plugging")
    assert main(["pretrain", "--task", "peg_insertion", "--demos", str(path), "--log-dir", str(tmp_path / "x")]) == 2
    assert "other tasks (charger_plugging) than peg_insertion" in capsys.readouterr().err
    assert main(["pretrain", "--tasks", "peg_insertion,pick_and_place", "--demos", str(path)]) == 2
    assert "cannot share one policy" in capsys.readouterr().err
