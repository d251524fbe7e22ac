"""USER policies: torch models, the weights codec and the actor (inference) node."""
