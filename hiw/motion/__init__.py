"""Hand motion: hand models, fitting, camera space and head rotation, the paper's temporal processing
and filters, and the motion stage that runs them in order (``hiw.motion.pipeline``)."""
