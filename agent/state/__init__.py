"""Where offsets are kept: the daemon's checkpoints and the backfill's state."""
