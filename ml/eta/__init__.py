"""Shipment ETAs: point-in-time examples, a LightGBM model of the delay against the carrier's
plan, evaluation against that plan, the MLflow registry and the live scorer."""
