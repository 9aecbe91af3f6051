"""The learned shadow detector's training: synthetic shadows on real photos (:mod:`shadow_model.synth`), the
network (:mod:`shadow_model.network`), training with leave-photos-out folds (:mod:`shadow_model.train`) and
scoring (:mod:`shadow_model.evaluate`). Stage 2 serves the result through the ``exported`` backend."""
