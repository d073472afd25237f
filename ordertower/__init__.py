"""Shared core of Order Control Tower: the one environment resolver and the lake connection.

Every other package (``pipelines``, ``ml``, ``dashboards``) resolves paths and opens the lake
through this package, so there is exactly one place that knows where things live.
"""
