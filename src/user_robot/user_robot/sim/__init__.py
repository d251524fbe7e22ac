"""MuJoCo sim cell (pure core, no rclpy): arms, impedance controller, task scenes, scripted expert.

Importing this package chooses the OpenGL backend (:mod:`user_robot.sim.gl`) before MuJoCo is
imported, so offscreen rendering works on CPU-only machines (OSMesa) and GPU machines (EGL).
"""

from user_robot.sim.gl import choose_gl

choose_gl()
