"""The batched linear mixed-model engine.

One REML fit per protein, all proteins solved together as stacked small dense problems. See
:mod:`pepmix.model.reml` for the model, notation and the compressed criterion.
"""
