# Variance-test reference: REML LRTs of each random term with lme4 / lmerTest, and RLRsim's
# exact (simulated) finite-sample p-values for the sample term.
# Reads datasets.csv.gz (generate.py), writes lrt_reference.csv. Run from the repository root:
#   Rscript tests/reference/lrt/fit_lme4.R
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(RLRsim)
})
dir <- "tests/reference/lrt"
data <- read.csv(file.path(dir, "datasets.csv.gz"), stringsAsFactors = TRUE)
set.seed(1)
best_fit <- function(formula, d) {
  # best REML criterion over two optimisers (lme4's default can stop early on flat criteria)
  fits <- lapply(c("bobyqa", "Nelder_Mead"), function(opt) {
    tryCatch(
      suppressWarnings(suppressMessages(
        lme4::lmer(formula, data = d, REML = TRUE, control = lmerControl(optimizer = opt))
      )),
      error = function(e) NULL
    )
  })
  fits <- Filter(Negate(is.null), fits)
  crit <- sapply(fits, REMLcrit)
  fits[[which.min(crit)]]
}
rows <- list()
for (k in sort(unique(data$dataset))) {
  d <- data[data$dataset == k, ]
  d$feature <- droplevels(d$feature)
  d$sample <- droplevels(d$sample)
  full <- best_fit(y ~ condition + (1 | feature) + (1 | sample), d)
  no_feature <- best_fit(y ~ condition + (1 | sample), d)
  no_sample <- best_fit(y ~ condition + (1 | feature), d)
  # lmerTest::ranova on lmerTest's fit of the full model (its own reduced refits)
  rt <- tryCatch({
    m <- suppressWarnings(suppressMessages(
      lmerTest::lmer(y ~ condition + (1 | feature) + (1 | sample), data = d, REML = TRUE)
    ))
    ranova(m)
  }, error = function(e) NULL)
  ranova_feature <- if (is.null(rt)) NA else rt[["LRT"]][2]
  ranova_sample <- if (is.null(rt)) NA else rt[["LRT"]][3]
  # RLRsim: exact restricted LRT of the sample variance with the feature effect in the model
  only_sample <- best_fit(y ~ condition + (1 | sample), d)
  ex <- tryCatch(
    suppressWarnings(exactRLRT(m = only_sample, mA = full, m0 = no_sample, nsim = 10000)),
    error = function(e) NULL
  )
  vc <- as.data.frame(VarCorr(full))
  rows[[length(rows) + 1]] <- data.frame(
    dataset = k,
    n_samples = nlevels(d$sample),
    n_features = nlevels(d$feature),
    crit_full = REMLcrit(full),
    crit_no_feature = REMLcrit(no_feature),
    crit_no_sample = REMLcrit(no_sample),
    lrt_feature = REMLcrit(no_feature) - REMLcrit(full),
    lrt_sample = REMLcrit(no_sample) - REMLcrit(full),
    ranova_lrt_feature = ranova_feature,
    ranova_lrt_sample = ranova_sample,
    exact_rlrt_sample = if (is.null(ex)) NA else unname(ex$statistic),
    exact_p_sample = if (is.null(ex)) NA else ex$p.value,
    var_feature = vc$vcov[vc$grp == "feature"],
    var_sample = vc$vcov[vc$grp == "sample"],
    var_residual = vc$vcov[vc$grp == "Residual"]
  )
}
out <- do.call(rbind, rows)
write.csv(out, file.path(dir, "lrt_reference.csv"), row.names = FALSE)
writeLines(c(
  paste("R", R.version$major, R.version$minor),
  paste("lme4", packageVersion("lme4")),
  paste("lmerTest", packageVersion("lmerTest")),
  paste("RLRsim", packageVersion("RLRsim"))
), file.path(dir, "versions.txt"))
