# lme4 reference for weighted REML (observation weights: residual variance sigma^2 / w).
# Input: weighted_data.csv (generate.py). Output: weighted_lme4.csv, one row per protein.
# Run from this folder: Rscript fit_lme4.R
suppressPackageStartupMessages(library(lme4))
d <- read.csv("weighted_data.csv", stringsAsFactors = TRUE)
rows <- list()
for (p in levels(d$protein)) {
  s <- droplevels(d[d$protein == p, ])
  best <- NULL
  for (opt in c("bobyqa", "Nelder_Mead", "nloptwrap")) {
    m <- lmer(y ~ 0 + condition + (1 | feature) + (1 | sample), data = s, weights = w,
              REML = TRUE, control = lmerControl(optimizer = opt, calc.derivs = FALSE))
    if (is.null(best) || REMLcrit(m) < REMLcrit(best)) best <- m
  }
  th <- getME(best, "theta")
  fe <- fixef(best)
  rows[[p]] <- data.frame(
    protein = p, reml = REMLcrit(best), sigma = sigma(best),
    theta_feature = unname(th["feature.(Intercept)"]),
    theta_sample = unname(th["sample.(Intercept)"]),
    beta_A = unname(fe["conditionA"]), beta_B = unname(fe["conditionB"]),
    beta_C = unname(fe["conditionC"]), sum_log_w = sum(log(s$w))
  )
}
out <- do.call(rbind, rows)
write.csv(out, "weighted_lme4.csv", row.names = FALSE)
cat(sprintf("lme4 %s, R %s\n", packageVersion("lme4"), getRversion()))
