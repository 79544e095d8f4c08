"""Scale protocols, transports and weighing logic."""
