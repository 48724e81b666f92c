"""Hand motion: resampling and smoothing of tracks, kinematic facts, (later) MANO fitting."""
