"""hiw: egocentric video -> 3D hand motion + text."""

__version__ = "0.1.0"
