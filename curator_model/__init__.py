"""The learned curator: network, training data, training, evaluation and the shipped checkpoint."""
