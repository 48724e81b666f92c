"""Training data for the motion models: procedural hand motion with text labels (``hiw.data.procedural``)."""
