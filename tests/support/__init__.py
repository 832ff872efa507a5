"""What the tests share: real repositories and state directories (helpers), the sample
repository built once per session (template), the daemon as a process (daemons), finding the
processes a test started (processes), a target whose tests hang (hanging), the policy's facts
(facts), driving the TUI (tui), the scripted servers (chat_server, replay), the tiny model,
the adversarial corpus, the load, the fault drills' equipment (drill), clients and the command
line run as another user (users), strings that try to act on a terminal (hostile), the order
the suite runs in (order). Test
modules import from here, never from each other (tests/test_suite_shape.py checks)."""
