"""Statistical inference on fitted protein models: contrasts, Satterthwaite tests, empirical Bayes
variance moderation (:mod:`pepmix.inference.ebayes`) and multiple-testing adjustment."""
