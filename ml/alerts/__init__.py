"""Exception detection on the live stream: rules, detection, priced alternatives."""
