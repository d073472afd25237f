"""Seeded world simulator for Order Control Tower.

``simulate()`` writes a complete, reproducible landing zone (reference data, OMS/WMS/TMS
exports, carrier feeds in their native formats, payments labels, CRM reviews) plus a
``truth/`` folder with the ground truth for evaluation. See docs/simulator.md.
"""

from .simulate import SimulationSummary, simulate

__all__ = ["SimulationSummary", "simulate"]
