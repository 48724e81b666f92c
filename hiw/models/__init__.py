"""Motion models: the SHIFT motion tokenizer (a T2M-GPT-style VQ-VAE, ``hiw.models.vqvae``) and its quantizer."""
