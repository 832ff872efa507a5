"""overseer: supervised, autonomous code-improvement cycles on git repositories."""

__version__ = "0.1.0"
