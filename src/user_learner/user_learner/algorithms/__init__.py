"""Learning algorithms (pure torch), one module each, registered in :data:`user_learner.algorithms.base.ALGORITHMS`."""
