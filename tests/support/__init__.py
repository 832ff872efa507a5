"""What the tests share: real repositories and state directories (helpers), the daemon as a
process (daemons), the scripted servers, the tiny model, the adversarial corpus, the load,
the fault drills' equipment. Test modules import from here, never from each other."""
