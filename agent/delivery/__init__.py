"""Outputs and the senders that feed them."""
