"""The risk domain: features, the model life cycle (train, evaluate, promote) and scoring."""
