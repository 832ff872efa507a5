"""The long-running supervisor: scheduled cycles, the control socket, systemd integration."""
