"""autoagent: an autonomous, goal-driven agent for the terminal."""

__version__ = "0.1.0"
