"""Robot side of USER: arm bridge and safety, cameras, teleop, MuJoCo sim cell."""
