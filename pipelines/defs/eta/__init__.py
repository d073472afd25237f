"""The ETA domain: the model life cycle (train, evaluate, promote) and the ETAs of open shipments."""
