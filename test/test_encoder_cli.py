"""``user-rl encoder`` on frames recorded through the real graph: the file it writes is the frozen
backbone a pixel policy loads; bad input gets one clear line."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from user_learner.cli import main as cli
from user_learner.cli.collect import record_demos
from user_policies.policies.base import build_policy
from user_policies.policy_spec import PolicySpec
from user_robot.config_loader import CONFIG_DIR_ENV, write_config_copy

TASK = "peg_insertion"


def test_encoder_pretrained_on_recorded_frames_is_what_a_pixel_policy_freezes(tmp_path, monkeypatch, capsys):
    config = write_config_copy(tmp_path / "config", {f"tasks/{TASK}": {"observation.image_size": [64, 64]}})
    monkeypatch.setenv(CONFIG_DIR_ENV, str(config))
    _, code = record_demos(TASK, "sim", 2, tmp_path / "frames", obs="pixels", real_time_factor=4.0,
                           log_dir=tmp_path / "logs", timeout=240.0)
    assert code == 0
    out = tmp_path / "encoder.safetensors"
    assert cli.main(["encoder", "--task", TASK, "--bags", str(tmp_path / "frames"), "--out", str(out),
                     "--epochs", "2", "--val-fraction", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "held out" in printed and f"encoder task={TASK} cameras=wrist,front held_out_r2=" in printed
    with safe_open(str(out), framework="pt") as f:
        figures = json.loads(f.metadata()["user_encoder"])
    assert figures["task"] == TASK and figures["held_out_frames"] > 0 and figures["train_frames"] > 0
    assert figures["targets"] == ["tcp_pose"]  # what a camera sees of what peg insertion observes

    spec = PolicySpec(state_dim=5, action_dim=6, kind="cnn", cameras=("wrist", "front"), image_size=(64, 64),
                      pretrained_encoder=str(out))
    backbone = build_policy(spec).encoder.backbone.state_dict()
    for name, tensor in load_file(str(out)).items():
        assert torch.equal(backbone[name], tensor), name
    random = build_policy(PolicySpec(state_dim=5, action_dim=6, kind="cnn", cameras=("wrist", "front"),
                                     image_size=(64, 64))).encoder.backbone.state_dict()
    assert any(not torch.equal(backbone[k], random[k]) for k in random)  # not the fixed random draw

    assert cli.main(["encoder", "--task", TASK, "--bags", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing: no such recording" in capsys.readouterr().err
    assert cli.main(["encoder", "--task", TASK, "--bags", str(tmp_path / "frames"), "--out", str(out),
                     "--cameras", "wrist,side"]) == 2
    assert "has no side image" in capsys.readouterr().err
    assert cli.main(["encoder", "--task", TASK, "--bags", str(tmp_path / "frames"), "--out", str(out),
                     "--targets", "tcp_pose,object_state"]) == 2
    err = capsys.readouterr().err
    assert "--targets: task peg_insertion observes tcp_pose, tcp_vel, wrench; not object_state" in err
