"""Models and how they train.

``loop`` (with ``loop_settings`` and ``checkpoints``) is the training loop every model shares. The rest is
the SHIFT motion tokenizer: ``quantizer``, ``vqvae`` and ``tokenizer`` (the model), ``shift_train`` (its
job for the loop), ``shift_checkpoint`` (loading a trained one), ``codec`` and ``tokens`` (applying it),
``shift_metrics`` and ``shift_eval`` (how good it is), ``shift_runs`` (the jobs the flows and CLI call).
"""
