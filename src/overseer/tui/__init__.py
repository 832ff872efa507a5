"""The terminal UI. It reaches the daemon only through overseer.client, and imports nothing
from overseer.core (a test checks both directions)."""
