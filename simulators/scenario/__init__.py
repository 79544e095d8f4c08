"""QA scenarios: a TOML format, a runner that drives the simulated table and the daemon, JUnit."""
