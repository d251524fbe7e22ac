"""USER learner: replay buffers, algorithms, demo bags, the learner node and the user-rl CLI."""
