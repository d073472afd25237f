"""Dispatch planning: which warehouse ships which order line, by which lane, and the last-mile routes."""
