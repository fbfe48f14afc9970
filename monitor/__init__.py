"""news monitor: watch RSS/Atom feeds for what you care about and alert within minutes."""

__version__ = "0.1.0"
