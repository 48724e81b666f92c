"""The evaluation suite: a text-motion evaluator trained per dataset, and the paper's text-to-motion and
motion-to-text metrics computed with it (PAPER.md section 5; ../shared/CLUTCH_CODE.md section 3 for how the
authors compute each one and where hiw differs; docs/ARCHITECTURE.md, Evaluation suite, for the choices).

- ``text`` / ``word_vectors``: captions -> words, part-of-speech categories and word vectors (the evaluator's input);
- ``evaluator`` / ``data`` / ``train`` / ``checkpoint``: the contrastive model, its clips, its training job for the
  shared loop, and a trained one loaded (the embeddings every metric is computed on);
- ``metrics`` (pure numpy) and ``nlg`` (BLEU, ROUGE-L, CIDEr, BERTScore);
- ``generations``, ``baselines``, ``t2m``, ``m2t``, ``report``, ``runs``: what is scored, and how.
"""
