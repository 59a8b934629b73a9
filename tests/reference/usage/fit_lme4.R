# Peptide-usage reference: lmer(y ~ condition + (1|feature) + (1|feature:condition) + (1|sample))
# with lme4 / lmerTest. Reads datasets.csv.gz (generate.py), writes usage_reference.csv and
# versions.txt. Run from the repository root:  Rscript tests/reference/usage/fit_lme4.R
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})
dir <- "tests/reference/usage"
data <- read.csv(file.path(dir, "datasets.csv.gz"), stringsAsFactors = TRUE)
form <- y ~ condition + (1 | feature) + (1 | feature:condition) + (1 | sample)
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
flat <- function(x) paste(sprintf("%.12g", as.vector(x)), collapse = ";")
rows <- list()
for (k in sort(unique(data$dataset))) {
  d <- data[data$dataset == k, ]
  d <- droplevels(d)
  best <- best_fit(form, d)
  m <- suppressWarnings(suppressMessages(lmerTest::lmer(form, data = d, REML = TRUE)))
  # Satterthwaite df of the second condition against the first (treatment coding)
  L <- matrix(0, 1, length(fixef(m)))
  L[1, 2] <- 1
  ct <- contest(m, L, joint = FALSE, ddf = "Satterthwaite")
  rt <- tryCatch(ranova(m), error = function(e) NULL)
  usage_row <- if (is.null(rt)) NA else grep("feature:condition", rownames(rt))
  no_usage <- best_fit(y ~ condition + (1 | feature) + (1 | sample), d)
  th <- getME(best, "theta")
  th_m <- getME(m, "theta")
  rows[[length(rows) + 1]] <- data.frame(
    dataset = k,
    n_obs = nrow(d),
    n_conditions = nlevels(d$condition),
    n_features = nlevels(d$feature),
    crit = REMLcrit(best),
    crit_default = REMLcrit(m),
    theta_usage = unname(th[grep("^feature:condition", names(th))]),
    theta_feature = unname(th[grep("^feature\\.", names(th))]),
    theta_sample = unname(th[grep("^sample", names(th))]),
    sigma = sigma(best),
    default_theta_usage = unname(th_m[grep("^feature:condition", names(th_m))]),
    default_theta_feature = unname(th_m[grep("^feature\\.", names(th_m))]),
    default_theta_sample = unname(th_m[grep("^sample", names(th_m))]),
    fixef = flat(fixef(m)),
    vcov = flat(as.matrix(vcov(m))),
    estimate = ct$Estimate,
    se = ct[["Std. Error"]],
    df = ct$df,
    p = ct[["Pr(>|t|)"]],
    crit_no_usage = REMLcrit(no_usage),
    lrt_usage = REMLcrit(no_usage) - REMLcrit(best),
    ranova_lrt_usage = if (length(usage_row) == 1) rt[["LRT"]][usage_row] else NA,
    ranova_p_usage = if (length(usage_row) == 1) rt[["Pr(>Chisq)"]][usage_row] else NA
  )
}
out <- do.call(rbind, rows)
write.csv(out, file.path(dir, "usage_reference.csv"), row.names = FALSE)
writeLines(c(
  paste("R", R.version$major, R.version$minor),
  paste("lme4", packageVersion("lme4")),
  paste("lmerTest", packageVersion("lmerTest"))
), file.path(dir, "versions.txt"))
