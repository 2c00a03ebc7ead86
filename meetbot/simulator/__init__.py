"""Meeting simulator: Meet, Zoom and Teams look-alike guest pages plus a control API, for demos and tests."""

from meetbot.simulator.app import create_app, run

__all__ = ["create_app", "run"]
