"""What each half of a split deployment says it waits for and sees, each thing once."""

from __future__ import annotations

from user_learner.cli.runner import SideWatch


def watch(side: str) -> tuple[SideWatch, list[str]]:
    said: list[str] = []
    return SideWatch(side, said.append), said


def test_the_learner_side_names_each_robot_it_sees_once() -> None:
    learner, said = watch("learner")
    learner.check([], ["/learner"], set())
    assert len(said) == 1 and said[0].startswith("learner side: waiting for robots")
    learner.check(["/robot_0/actor"], ["/learner"], set())
    learner.check(["/robot_0/actor", "/robot_1/actor"], ["/learner"], {3})
    learner.check(["/robot_1/actor", "/robot_0/actor"], ["/learner"], {4})
    assert said[1:] == ["learner side: sees robot /robot_0/actor", "learner side: sees robot /robot_1/actor"]


def test_the_robot_side_says_when_the_learner_and_its_weights_arrive() -> None:
    robot, said = watch("robot")
    robot.check(["/robot_0/actor"], [], set())
    robot.check(["/robot_0/actor"], ["/learner"], set())
    robot.check(["/robot_0/actor"], ["/learner"], {2, 5})
    robot.check(["/robot_0/actor"], ["/learner"], {2, 5, 6})
    assert said[0].startswith("robot side: waiting for the learner's weights (/user/policy_weights")
    assert said[1:] == ["robot side: sees the learner /learner",
                        "robot side: the actors run learned weights (version 5)"]


def test_one_process_with_both_halves_says_nothing() -> None:
    both, said = watch("all")
    both.check(["/robot_0/actor"], ["/learner"], {1})
    assert said == []
