"""Statistical inference on fitted protein models: contrasts, Satterthwaite tests, empirical Bayes
moderation of the contrast variances (:mod:`pepmix.inference.moderation`, on the limma port
:mod:`pepmix.inference.limma`) and multiple-testing adjustment."""
