"""The improvement cycle. Knows nothing of the terminal UI, sockets or the scheduler."""
