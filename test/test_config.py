"""Every shipped config validates, and malformed ones fail naming the file and the key."""

from __future__ import annotations

import pytest

from user_robot.config_loader import ConfigError, config_dir, config_names, from_mapping, read_yaml, write_config_copy
from user_robot.robot_config import load_robot
from user_robot.task_config import TaskConfig, load_task


@pytest.mark.parametrize("name", config_names("tasks"))
def test_task_configs_load(name: str) -> None:
    task = load_task(name)
    assert task.name == name
    assert task.episode_length > 0


@pytest.mark.parametrize("name", config_names("robots"))
def test_robot_configs_load(name: str) -> None:
    robot = load_robot(name)
    assert robot.name == name
    assert robot.safety.max_translation_step > 0


def _peg() -> dict:
    return read_yaml(config_dir() / "tasks" / "peg_insertion.yaml")


@pytest.mark.parametrize(
    ("edit", "key", "problem"),
    [
        (lambda d: d["action"].update(translaton_scale=0.1), "action.translaton_scale", "unknown key"),
        (lambda d: d["action"].update(dims=5), "action.dims", "must be one of"),
        (lambda d: d["target"].update(xyz=[0.1, 0.2]), "target.xyz", "expected 3 items"),
        (lambda d: d.pop("workspace"), "workspace", "required key is missing"),
        (lambda d: d.update(episode_length="long"), "episode_length", "expected an integer"),
        (lambda d: d["workspace"].update(xyz_low=[1, 1, 1]), "workspace", "xyz_low must be <= xyz_high"),
        (lambda d: d["observation"].update(position_scale=0), "observation", "position_scale must be positive"),
    ],
)
def test_malformed_task_names_file_and_key(tmp_path, edit, key: str, problem: str) -> None:
    data = _peg()
    edit(data)
    with pytest.raises(ConfigError) as info:
        from_mapping(TaskConfig, data, file=tmp_path / "bad.yaml")
    assert info.value.key == key
    assert problem in info.value.problem
    assert "bad.yaml" in str(info.value) and key in str(info.value)


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"known: .*peg_insertion"):
        load_task("peg_insertoin")


def test_invalid_yaml_names_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv("USER_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"broken\.yaml.*invalid YAML"):
        load_robot("broken")


def test_config_copy_sets_nested_and_dotted_keys_and_new_files(tmp_path) -> None:
    original = (config_dir() / "algorithms" / "sac.yaml").read_text()
    root = write_config_copy(tmp_path / "config", {
        "algorithms/sac": {"sac": {"batch_size": 8}, "policy.hidden_dims": [16], "utd": 0.5},
        "algorithms/mine": {"algorithm": "sac"},
    })
    sac = read_yaml(root / "algorithms" / "sac.yaml")
    assert sac["sac"]["batch_size"] == 8 and sac["sac"]["num_critics"] == 10  # merged, not replaced
    assert sac["policy"]["hidden_dims"] == [16] and sac["utd"] == 0.5
    assert read_yaml(root / "algorithms" / "mine.yaml") == {"algorithm": "sac"}
    assert (config_dir() / "algorithms" / "sac.yaml").read_text() == original
