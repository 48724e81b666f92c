"""Finding, probing, clipping and decoding videos."""
