"""The engine: Streams that turn bytes into sealed batches, and the Ledger of offsets."""
