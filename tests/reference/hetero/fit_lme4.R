# lme4 / lmerTest reference for the batch:condition term (heterogeneity of the condition effect).
# Run from the repository root: Rscript tests/reference/hetero/fit_lme4.R
# Input tests/reference/hetero/datasets.csv (generate.py); output hetero_reference.csv, one row
# per data set: REML criterion of the best of two optimisers (bobyqa, Nelder_Mead) for the full
# model and for the model without (1|batch:condition), the relative SDs (theta) and sigma of the
# best full fit, fixed effects, vcov of conditionB, and lmerTest's Satterthwaite df / SE / p of
# the contrast B - A (contest1D).
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
here <- "tests/reference/hetero"
d <- read.csv(file.path(here, "datasets.csv"), stringsAsFactors = FALSE)
d$condition <- factor(d$condition, levels = c("A", "B"))
best_fit <- function(form, data) {
  fits <- lapply(c("bobyqa", "Nelder_Mead"), function(opt)
    lmerTest::lmer(form, data = data, REML = TRUE,
                   control = lmerControl(optimizer = opt, calc.derivs = FALSE)))
  crit <- sapply(fits, REMLcrit)
  fits[[which.min(crit)]]
}
full_form <- y ~ condition + (1 | feature) + (1 | sample) + (1 | batch) + (1 | batch:condition)
red_form <- y ~ condition + (1 | feature) + (1 | sample) + (1 | batch)
rows <- list()
for (ds in unique(d$dataset)) {
  x <- d[d$dataset == ds, ]
  full <- best_fit(full_form, x)
  red <- best_fit(red_form, x)
  vc <- as.data.frame(VarCorr(full))
  sig <- sigma(full)
  sdof <- function(g) vc$sdcor[vc$grp == g]
  ct <- contest1D(full, c(0, 1), ddf = "Satterthwaite")
  rows[[ds]] <- data.frame(
    dataset = ds, n_obs = nrow(x), reml_crit = REMLcrit(full), reml_crit_reduced = REMLcrit(red),
    theta_feature = sdof("feature") / sig, theta_sample = sdof("sample") / sig,
    theta_batch = sdof("batch") / sig, theta_batch_condition = sdof("batch:condition") / sig,
    sigma = sig, intercept = fixef(full)[[1]], conditionB = fixef(full)[[2]],
    var_conditionB = vcov(full)[2, 2], se = ct$`Std. Error`, df = ct$df,
    pvalue = ct$`Pr(>|t|)`, singular = isSingular(full))
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "hetero_reference.csv"), row.names = FALSE)
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("lmerTest", packageVersion("lmerTest"))), file.path(here, "versions.txt"))
