"""The drivers of the engine (run, backfill, validate) and their composition root."""
