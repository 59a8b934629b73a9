# lme4 / lmerTest reference for the (condition|batch) random-slope model (pepmix.model.slopes).
# Run from the repository root: Rscript tests/reference/slopes/make_reference.R
# Input tests/reference/slopes/datasets.csv (generate.py). Output slopes_reference.csv, long
# format (dataset, key, value), per data set: REML criterion of each of two optimisers (bobyqa,
# Nelder_Mead) and of the best, the best fit's theta (lme4 order and names), sigma, variances of
# feature and sample, the (condition|batch) covariance matrix (data units, treatment coding),
# isSingular, fixed effects, vcov, and lmerTest's Satterthwaite estimate / SE / df / p of every
# pairwise condition contrast (contest1D); also the REML criterion of the compound-symmetry
# model (1|batch) + (1|batch:condition) and of (1|batch) alone (best of the two optimisers).
# The full model is also refitted (bobyqa) from pepmix's optimum (starts.csv, written by
# starts.py: theta_feature, theta_sample, then the Cholesky factor column by column) and the best
# of the three fits is the reference: lme4's optimisers can stop on a higher singular face.
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
here <- "tests/reference/slopes"
d <- read.csv(file.path(here, "datasets.csv"), stringsAsFactors = FALSE)
fit_both <- function(form, data) {
  lapply(c("bobyqa", "Nelder_Mead"), function(opt)
    suppressMessages(suppressWarnings(lmerTest::lmer(form, data = data, REML = TRUE,
      control = lmerControl(optimizer = opt, calc.derivs = FALSE)))))
}
starts <- read.csv(file.path(here, "starts.csv"))
fit_from <- function(form, data, ds, template) {
  st <- starts$theta[starts$dataset == ds]
  nm <- names(getME(template, "theta"))
  th <- numeric(length(nm))
  th[nm == "feature.(Intercept)"] <- st[1]
  th[nm == "sample.(Intercept)"] <- st[2]
  th[startsWith(nm, "batch.")] <- st[-(1:2)]
  names(th) <- nm
  suppressMessages(suppressWarnings(lmerTest::lmer(form, data = data, REML = TRUE,
    start = list(theta = th),
    control = lmerControl(optimizer = "bobyqa", calc.derivs = FALSE))))
}
best_of <- function(fits) fits[[which.min(sapply(fits, REMLcrit))]]
full_form <- y ~ condition + (1 | feature) + (1 | sample) + (condition | batch)
cs_form <- y ~ condition + (1 | feature) + (1 | sample) + (1 | batch) + (1 | batch:condition)
int_form <- y ~ condition + (1 | feature) + (1 | sample) + (1 | batch)
rows <- list()
add <- function(ds, key, value) rows[[length(rows) + 1]] <<-
  data.frame(dataset = ds, key = key, value = as.numeric(value))
for (ds in unique(d$dataset)) {
  x <- d[d$dataset == ds, ]
  levs <- sort(unique(x$condition))
  x$condition <- factor(x$condition, levels = levs)
  fits <- fit_both(full_form, x)
  fits[[3]] <- fit_from(full_form, x, ds, fits[[1]])
  full <- best_of(fits)
  add(ds, "reml_crit", REMLcrit(full))
  add(ds, "reml_crit_bobyqa", REMLcrit(fits[[1]]))
  add(ds, "reml_crit_nelder_mead", REMLcrit(fits[[2]]))
  add(ds, "reml_crit_pepmix_start", REMLcrit(fits[[3]]))
  add(ds, "reml_crit_cs", REMLcrit(best_of(fit_both(cs_form, x))))
  add(ds, "reml_crit_intercept", REMLcrit(best_of(fit_both(int_form, x))))
  add(ds, "singular", isSingular(full))
  add(ds, "n_obs", nrow(x))
  add(ds, "n_conditions", length(levs))
  th <- getME(full, "theta")
  for (i in seq_along(th)) add(ds, paste0("theta[", names(th)[i], "]"), th[[i]])
  add(ds, "sigma", sigma(full))
  vc <- VarCorr(full)
  add(ds, "var_feature", vc$feature[1, 1])
  add(ds, "var_sample", vc$sample[1, 1])
  cb <- vc$batch
  for (i in seq_len(nrow(cb))) for (j in seq_len(ncol(cb)))
    add(ds, sprintf("cov_batch[%d,%d]", i - 1, j - 1), cb[i, j])
  fe <- fixef(full)
  for (i in seq_along(fe)) add(ds, sprintf("fixef[%d]", i - 1), fe[[i]])
  v <- as.matrix(vcov(full))
  for (i in seq_len(nrow(v))) for (j in seq_len(ncol(v)))
    add(ds, sprintf("vcov[%d,%d]", i - 1, j - 1), v[i, j])
  k <- length(levs)
  for (a in 1:(k - 1)) for (b in (a + 1):k) {
    L <- rep(0, k)
    L[b] <- 1
    if (a > 1) L[a] <- -1
    ct <- contest1D(full, L, ddf = "Satterthwaite")
    name <- paste0(levs[b], "-", levs[a])
    add(ds, paste0("estimate[", name, "]"), ct$Estimate)
    add(ds, paste0("se[", name, "]"), ct$`Std. Error`)
    add(ds, paste0("df[", name, "]"), ct$df)
    add(ds, paste0("p[", name, "]"), ct$`Pr(>|t|)`)
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "slopes_reference.csv"), row.names = FALSE)
writeLines(c(R.version.string, paste("lme4", packageVersion("lme4")),
             paste("lmerTest", packageVersion("lmerTest"))), file.path(here, "versions.txt"))
