"""Order risk review: point-in-time features, a calibrated LightGBM model, rules baseline."""
