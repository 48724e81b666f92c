"""The CLUTCH language model (PAPER.md section 4): T5 over SHIFT motion tokens, trained in three phases
(pretrain, align, instruct), with text-to-motion generation and motion captioning. See ``hiw.lm.runs``."""
