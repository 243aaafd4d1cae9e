"""Inventories, transfer config, state, diff, plans, apply and verify for xnatctl.

This package never imports ``xnatctl``: it reaches XNAT only through ``planner.backend``.
"""

__version__ = "0.1.0"
