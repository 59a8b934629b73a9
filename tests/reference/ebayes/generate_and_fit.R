# Reference values for pepmix.inference.limma from limma.
#
# Simulates seeded input sets, runs limma's fitFDist, fitFDistRobustly, squeezeVar, treat/eBayes
# and stats::p.adjust, and writes inputs and outputs next to this script:
#   cases.csv.gz      per-protein inputs and outputs of every variance case (long format)
#   scalars.csv       scalar outputs per case (prior df / variance, outlier df, ...)
#   treat.csv.gz      toy lmFit + treat/eBayes results (end-to-end moderated test check)
#   bh.csv            p-values and p.adjust(method = "BH")
#   versions.json     R / limma versions and seed
# Numbers are written with 17 significant digits (exact double round trip).
#
# Regenerate (from anywhere):  Rscript tests/reference/ebayes/generate_and_fit.R

suppressPackageStartupMessages({
  library(limma)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", grep("^--file=", args, value = TRUE))
outdir <- if (length(script)) dirname(normalizePath(script)) else getwd()

SEED <- 20240611L

f17 <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "nan"
  out[!is.na(x) & x == Inf] <- "inf"
  out[!is.na(x) & x == -Inf] <- "-inf"
  out
}

# Simulate s2_g ~ s0^2 F(d_g, d0): sigma2_g = s0^2 d0 / chisq(d0), s2_g = sigma2_g chisq(d_g)/d_g
sim_s2 <- function(n, df, s02, d0) {
  sigma2 <- if (is.finite(d0)) s02 * d0 / rchisq(n, d0) else rep(s02, n)
  sigma2 * rchisq(n, df) / df
}

rows <- list()
scalars <- list()

add_scalar <- function(case, key, value) {
  scalars[[length(scalars) + 1L]] <<- data.frame(case = case, key = key, value = f17(value))
}

run_case <- function(case, s2, df, covariate = NULL, robust = TRUE) {
  n <- length(s2)
  dfv <- if (length(df) == 1L) rep(df, n) else df
  add_scalar(case, "df_is_scalar", as.numeric(length(df) == 1L))
  nr <- fitFDist(s2, df1 = df, covariate = covariate)
  sv <- squeezeVar(s2, df, covariate = covariate)
  add_scalar(case, "fit_df2", nr$df2)
  add_scalar(case, "squeeze_df_prior", sv$df.prior)
  out <- data.frame(
    case = case, gene = seq_len(n), s2 = f17(s2), df = f17(dfv),
    covariate = if (is.null(covariate)) "nan" else f17(covariate),
    fit_scale = f17(rep_len(nr$scale, n)),
    var_post = f17(sv$var.post),
    var_prior = f17(rep_len(sv$var.prior, n)),
    stringsAsFactors = FALSE
  )
  if (is.null(covariate)) {
    add_scalar(case, "fit_scale", nr$scale)
    add_scalar(case, "squeeze_var_prior", sv$var.prior)
  }
  if (robust) {
    rb <- fitFDistRobustly(s2, df1 = df)
    svr <- squeezeVar(s2, df, robust = TRUE)
    add_scalar(case, "robust_scale", rb$scale)
    add_scalar(case, "robust_df2", rb$df2)
    add_scalar(case, "robust_df2_outlier", if (is.null(rb$df2.outlier)) NA else rb$df2.outlier)
    add_scalar(case, "squeeze_robust_var_prior", svr$var.prior)
    out$robust_df2_shrunk <- f17(rb$df2.shrunk)
    out$robust_tail_p <- f17(if (is.null(rb$tail.p.value)) rep(NA, n) else rb$tail.p.value)
    out$robust_prob_outlier <- f17(if (is.null(rb$prob.outlier)) rep(NA, n) else rb$prob.outlier)
    out$var_post_robust <- f17(svr$var.post)
    out$df_prior_robust <- f17(svr$df.prior)
  } else {
    out$robust_df2_shrunk <- "nan"
    out$robust_tail_p <- "nan"
    out$robust_prob_outlier <- "nan"
    out$var_post_robust <- "nan"
    out$df_prior_robust <- "nan"
  }
  rows[[length(rows) + 1L]] <<- out
  invisible(NULL)
}

# 1. 2000 proteins, integer df (scalar 4), true prior d0 = 5, s0^2 = 0.05
set.seed(SEED + 1L)
s2 <- sim_s2(2000, 4, 0.05, 5)
run_case("int_df", s2, 4)

# 2. Satterthwaite-like non-integer df in [2, 40]; zeros, missing variances, df = 0 and NA df
set.seed(SEED + 2L)
n <- 1500
df <- runif(n, 2, 40)
s2 <- sim_s2(n, df, 0.08, 7)
s2[sample(n, 12)] <- 0
s2[sample(n, 15)] <- NA
df[sample(n, 10)] <- 0
df[sample(n, 5)] <- NA
run_case("satterthwaite", s2, df)

# 3. Hypervariable outliers (3%), unequal non-integer df
set.seed(SEED + 3L)
n <- 1000
df <- runif(n, 3, 12)
s2 <- sim_s2(n, df, 0.05, 10)
out_idx <- sample(n, 30)
s2[out_idx] <- s2[out_idx] * runif(30, 10, 200)
run_case("outliers", s2, df)

# 4. Outliers with a common integer df (equal-df robust path)
set.seed(SEED + 4L)
n <- 800
s2 <- sim_s2(n, 6, 0.1, 4)
out_idx <- sample(n, 25)
s2[out_idx] <- s2[out_idx] * runif(25, 20, 100)
run_case("outliers_equal_df", s2, 6)

# 5. No prior variability beyond sampling (less dispersed than chi-square): df.prior = Inf,
#    plus two large values so the robust fit shrinks some df
set.seed(SEED + 5L)
n <- 300
s2 <- 0.1 * exp(rnorm(n, 0, 0.05))
s2[c(7, 150)] <- c(1.5, 3)
run_case("inf_prior", s2, 5)

# 6. Small case, 20 proteins, non-integer df
set.seed(SEED + 6L)
n <- 20
df <- runif(n, 2, 8)
s2 <- sim_s2(n, df, 0.2, 6)
run_case("small_n20", s2, df)

# 7. Variance trend on a covariate (e.g. mean log intensity), 800 proteins (spline df 4);
#    missing variances at both ends of the covariate range are predicted by linear extrapolation
set.seed(SEED + 7L)
n <- 800
cov <- runif(n, 4, 14)
s02 <- exp(-1 - 0.3 * (cov - 9) + 0.05 * (cov - 9)^2)
df <- runif(n, 3, 12)
s2 <- sim_s2(n, df, 1, 6) * s02
o <- order(cov)
s2[c(o[1:3], o[(n - 2):n], sample(n, 4))] <- NA
run_case("trend", s2, df, covariate = cov, robust = FALSE)

# 8. Small trend case, 25 proteins (spline df 3), one covariate -Inf (moved below the range)
set.seed(SEED + 8L)
n <- 25
cov <- runif(n, 5, 10)
cov[4] <- -Inf
s2 <- sim_s2(n, 4, 1, 8) * exp(-0.2 * pmax(cov, 4))
run_case("trend_small", s2, 4, covariate = cov, robust = FALSE)

cases <- do.call(rbind, rows)
con <- gzfile(file.path(outdir, "cases.csv.gz"), "w")
write.csv(cases, con, row.names = FALSE, quote = FALSE)
close(con)
write.csv(do.call(rbind, scalars), file.path(outdir, "scalars.csv"), row.names = FALSE,
          quote = FALSE)

# 9. treat / eBayes on a toy two-group lmFit (6 samples), some missing values
set.seed(SEED + 9L)
G <- 300
sigma <- sqrt(0.05 * 5 / rchisq(G, 5))
y <- matrix(rnorm(G * 6), G, 6) * sigma
beta <- c(rep(c(-1.5, -0.6, 0.6, 1.5), each = 10), rep(0, G - 40))
y[, 4:6] <- y[, 4:6] + beta
y[cbind(sample(G, 40), sample(6, 40, replace = TRUE))] <- NA
design <- cbind(Intercept = 1, Group = rep(0:1, each = 3))
fit <- lmFit(y, design)
tr <- treat(fit, lfc = 0.5)
trr <- treat(fit, lfc = 0.5, robust = TRUE)
eb <- eBayes(fit)
treat_tab <- data.frame(
  gene = seq_len(G),
  coef = f17(fit$coefficients[, 2]),
  stdev_unscaled = f17(fit$stdev.unscaled[, 2]),
  sigma2 = f17(fit$sigma^2),
  df_residual = f17(fit$df.residual),
  s2_post = f17(tr$s2.post),
  df_total = f17(tr$df.total),
  p_treat = f17(tr$p.value[, 2]),
  s2_post_robust = f17(trr$s2.post),
  df_total_robust = f17(trr$df.total),
  p_treat_robust = f17(trr$p.value[, 2]),
  p_ebayes = f17(eb$p.value[, 2])
)
con <- gzfile(file.path(outdir, "treat.csv.gz"), "w")
write.csv(treat_tab, con, row.names = FALSE, quote = FALSE)
close(con)

# 10. Benjamini-Hochberg with NA, ties, 0 and 1
set.seed(SEED + 10L)
p <- c(runif(400)^3, rep(0.01, 20), rep(NA, 30), 0, 1, 1, 1e-300)
p <- p[sample(length(p))]
write.csv(data.frame(p = f17(p), bh = f17(p.adjust(p, method = "BH"))),
          file.path(outdir, "bh.csv"), row.names = FALSE, quote = FALSE)

writeLines(toJSON(list(
  R = R.version.string,
  limma = as.character(packageVersion("limma")),
  statmod = as.character(packageVersion("statmod")),
  seed = SEED,
  generated_by = "tests/reference/ebayes/generate_and_fit.R"
), auto_unbox = TRUE, pretty = TRUE), file.path(outdir, "versions.json"))
