# Contrast-bootstrap reference (pepmix.model.bootstrap_contrasts), no R needed by the tests.
# Seeded small proteins (2 or 3 conditions x 3-4 samples, 3-5 features, ~15% missing cells);
# per protein and contrast "B - A":
#   - lmerTest's REML t and Satterthwaite p-value;
#   - pbkrtest::PBmodcomp (ML likelihood ratio, simulated from the ML fit of the model with
#     conditions A and B merged; nsim 400);
#   - the procedure of pepmix in R: REML fit of that null model, 1000 data sets simulated from
#     it (lme4 simulate), the full model refitted by REML (lme4 refit), Wald t = estimate / SE,
#     p = (1 + #{|t*| >= |t|}) / (1 + valid).
# Writes datasets.csv (dataset, n_cond, feature, sample, condition, y) and reference.csv.
# Run from the repository root:  Rscript tests/reference/bootstrap/pbmodcomp.R
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})
dir <- "tests/reference/bootstrap"
nsim <- 1000      # pepmix's procedure in R (REML refits)
nsim_pb <- 400    # PBmodcomp (two ML refits per simulation)
set.seed(20261206)
datasets <- list()
for (k in 0:7) {
  n_cond <- if (k %% 3 == 2) 3 else 2
  n_per <- if (k %% 2 == 0) 3 else 4
  n_feat <- sample(3:5, 1)
  conds <- c("A", "B", "C")[seq_len(n_cond)]
  samples <- sprintf("S%02d", seq_len(n_cond * n_per))
  cond <- rep(conds, each = n_per)
  sd_sample <- c(0, 0.15, 0.3)[k %% 3 + 1]
  delta <- c(0, 0, 0.4, 0.8)[k %% 4 + 1]
  u <- rnorm(n_feat, 0, 0.8)
  v <- rnorm(length(samples), 0, sd_sample)
  grid <- expand.grid(f = seq_len(n_feat), s = seq_along(samples))
  y <- 20 + delta * (cond[grid$s] == "B") + u[grid$f] + v[grid$s] + rnorm(nrow(grid), 0, 0.25)
  keep <- runif(nrow(grid)) > 0.15
  datasets[[k + 1]] <- data.frame(
    dataset = k, n_cond = n_cond, feature = sprintf("F%d", grid$f[keep]),
    sample = samples[grid$s[keep]], condition = cond[grid$s[keep]], y = round(y[keep], 10)
  )
}
data <- do.call(rbind, datasets)
write.csv(data, file.path(dir, "datasets.csv"), row.names = FALSE)

wald_t <- function(m) {
  cf <- summary(m)$coefficients
  unname(cf["conditionB", "Estimate"] / cf["conditionB", "Std. Error"])
}
rows <- list()
for (k in sort(unique(data$dataset))) {
  d <- data[data$dataset == k, ]
  d$condition <- factor(d$condition)
  d$cond0 <- factor(ifelse(d$condition %in% c("A", "B"), "AB", as.character(d$condition)))
  ctl <- lmerControl(check.conv.singular = "ignore")
  # null model: A and B merged (an intercept only with two conditions)
  f0 <- if (nlevels(d$cond0) > 1) y ~ cond0 + (1 | feature) + (1 | sample) else
    y ~ 1 + (1 | feature) + (1 | sample)
  full <- lmerTest::lmer(y ~ condition + (1 | feature) + (1 | sample), data = d, control = ctl)
  cf <- summary(full)$coefficients
  small_ml <- lme4::lmer(f0, data = d, REML = FALSE, control = ctl)
  full_ml <- lme4::lmer(y ~ condition + (1 | feature) + (1 | sample), data = d, REML = FALSE,
                        control = ctl)
  pb <- suppressWarnings(suppressMessages(
    PBmodcomp(full_ml, small_ml, nsim = nsim_pb, seed = 1000 + k)
  ))
  # pepmix's procedure: simulate from the REML null fit, refit the full model by REML, Wald t
  small <- lme4::lmer(f0, data = d, control = ctl)
  full4 <- lme4::lmer(y ~ condition + (1 | feature) + (1 | sample), data = d, control = ctl)
  t_obs <- wald_t(full4)
  sims <- simulate(small, nsim = nsim, seed = 2000 + k)
  t_star <- sapply(sims, function(ys) {
    tryCatch(suppressWarnings(suppressMessages(wald_t(refit(full4, ys)))),
             error = function(e) NA_real_)
  })
  ok <- is.finite(t_star)
  rows[[length(rows) + 1]] <- data.frame(
    dataset = k, n_cond = d$n_cond[1], n_samples = nlevels(factor(d$sample)),
    n_features = nlevels(factor(d$feature)),
    estimate = cf["conditionB", "Estimate"], t = cf["conditionB", "t value"],
    df_satterthwaite = cf["conditionB", "df"], p_satterthwaite = cf["conditionB", "Pr(>|t|)"],
    lrt_ml = pb$test["LRT", "stat"], p_lrt_chisq = pb$test["LRT", "p.value"],
    p_pbmodcomp = pb$test["PBtest", "p.value"], npos_pbmodcomp = pb$samples[["npos"]],
    p_boot_t = (1 + sum(abs(t_star[ok]) >= abs(t_obs) - 1e-6)) / (1 + sum(ok)),
    n_boot_t = sum(ok), nsim = nsim, nsim_pbmodcomp = nsim_pb
  )
  cat(k, format(Sys.time()), "\n")
}
write.csv(do.call(rbind, rows), file.path(dir, "reference.csv"), row.names = FALSE)
