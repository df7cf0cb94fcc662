"""The lesion-feature model: hyperdensity and left-right asymmetry features of the
aligned brain (:mod:`ml.lesion.features`), a regularised logistic regression
(:mod:`ml.lesion.model`), its training (:mod:`ml.lesion.train`), its model card
and the Predictor that serves it, whose explanation is the lesion map itself."""
