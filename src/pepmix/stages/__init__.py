"""One module per workflow rule: read the rule's inputs, call the library, return a result.

Every rule script in ``scripts/`` unpacks ``snakemake.input/params/output``, calls the ``run``
function of the module named like its rule, and writes the result::

    from pepmix.stages import fit
    fit.run(features=..., samples=..., model=...).write(proteins=..., fit=..., ...)

``run`` functions take keyword arguments only and return a small result object whose ``write``
method writes the rule's outputs atomically (figures are written as they are drawn: the plot
stages return the files they wrote). They work without Snakemake: the tests and
``benchmarks/stage_runner.py`` call them directly. The statistics below them are the library
(:mod:`pepmix.api` and the modules it uses), in the order of the data: reading
(:mod:`pepmix.readers`, :mod:`pepmix.ingest`), normalising (:mod:`pepmix.normalization`),
modelling (:mod:`pepmix.model`), inference (:mod:`pepmix.inference`), plotting
(:mod:`pepmix.plots`) and the report (:mod:`pepmix.report`).

=====================  ==========================================================
rule                   module
=====================  ==========================================================
prepare                :mod:`pepmix.stages.prepare` (ingest, merge, normalize, shard)
ingest                 :mod:`pepmix.stages.ingest`
merge                  :mod:`pepmix.stages.merge`
normalize              :mod:`pepmix.stages.normalize`
shard                  :mod:`pepmix.stages.shard`
variance_prior         :mod:`pepmix.stages.variance_prior`
fit                    :mod:`pepmix.stages.fit`
gather_model           :mod:`pepmix.stages.gather_model`
gather_abundance       :mod:`pepmix.stages.gather_abundance`
abundance              :mod:`pepmix.stages.abundance` (one shard: beside rule fit)
variance_components    :mod:`pepmix.stages.variance_components`
usage_refit            :mod:`pepmix.stages.usage_refit` (beside the test and plot jobs)
peptide_usage          :mod:`pepmix.stages.peptide_usage`
test                   :mod:`pepmix.stages.test`
calibration_check      :mod:`pepmix.stages.calibration`
plot_qc                :mod:`pepmix.stages.plot_qc`
plot_qc_abundance      :mod:`pepmix.stages.plot_qc_abundance`
plot_model             :mod:`pepmix.stages.plot_model` (and :mod:`pepmix.stages.plot_usage`
                       when the fit jobs test usage)
plot_usage             :mod:`pepmix.stages.plot_usage` (after rule usage_refit)
plot_differential      :mod:`pepmix.stages.plot_differential`
report_pages           :mod:`pepmix.stages.report_pages`
alerts                 :func:`pepmix.alerts.gather_alerts`
=====================  ==========================================================

The files the stages pass on are read by :mod:`pepmix.stages.files` (and, for the plots, by
:mod:`pepmix.plots.inputs`, which imports no modelling code so that plot jobs start fast). This
package's ``__init__`` imports nothing: a rule job loads only its own stage.
"""
