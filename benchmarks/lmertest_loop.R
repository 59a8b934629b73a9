#!/usr/bin/env Rscript
# Per-protein lmerTest loop, the reference point of benchmarks/bench_engine.py.
#
#   Rscript benchmarks/lmertest_loop.R data.csv results.csv timing.txt
#
# data.csv: columns protein, feature, run, condition, y (observed cells only; condition A is
# the reference). For every protein: lmerTest::lmer(y ~ condition + (1|feature) + (1|run),
# REML) and contest1D for conditionB (= B - A, Satterthwaite df). Only the loop is timed
# (system.time around it): R start-up, reading and splitting the data and a warm-up on the first
# three proteins are excluded.
# Proteins whose fit fails (e.g. a single feature: lme4 refuses a grouping factor with one
# level) count in the loop time and are reported with their error message.
# timing.txt gets "elapsed_s <wall>", "cpu_s <user+system>", "proteins <n>",
# "ms_per_protein <wall / n in ms>".

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3) stop("usage: lmertest_loop.R data.csv results.csv timing.txt")

data <- read.csv(args[1], colClasses = c(
  protein = "character", feature = "character", run = "character",
  condition = "character", y = "numeric"
))
data$condition <- factor(data$condition, levels = c("A", "B"))
by_protein <- split(data, data$protein)
n <- length(by_protein)

fit_one <- function(d) {
  warned <- FALSE
  res <- tryCatch(
    withCallingHandlers(
      {
        fit <- lmerTest::lmer(y ~ condition + (1 | feature) + (1 | run), data = d, REML = TRUE)
        ct <- lmerTest::contest1D(fit, c(0, 1), ddf = "Satterthwaite")
        list(
          estimate = ct$Estimate, se = ct$`Std. Error`, df = ct$df, p = ct$`Pr(>|t|)`,
          reml_crit = REMLcrit(fit), singular = isSingular(fit), error = ""
        )
      },
      warning = function(w) {
        warned <<- TRUE
        invokeRestart("muffleWarning")
      },
      message = function(m) invokeRestart("muffleMessage")
    ),
    error = function(e) {
      list(
        estimate = NA_real_, se = NA_real_, df = NA_real_, p = NA_real_,
        reml_crit = NA_real_, singular = NA, error = conditionMessage(e)
      )
    }
  )
  res$warning <- warned
  res
}

# warm-up outside the timed loop: the first lmer/contest1D calls load and byte-compile code
for (i in seq_len(min(3, n))) invisible(fit_one(by_protein[[i]]))

results <- vector("list", n)
timing <- system.time(
  for (i in seq_len(n)) results[[i]] <- fit_one(by_protein[[i]])
)
elapsed <- timing[["elapsed"]]
cpu <- timing[["user.self"]] + timing[["sys.self"]]

out <- data.frame(
  protein = names(by_protein),
  estimate = vapply(results, `[[`, numeric(1), "estimate"),
  se = vapply(results, `[[`, numeric(1), "se"),
  df = vapply(results, `[[`, numeric(1), "df"),
  p = vapply(results, `[[`, numeric(1), "p"),
  reml_crit = vapply(results, `[[`, numeric(1), "reml_crit"),
  singular = vapply(results, function(r) as.logical(r$singular), logical(1)),
  warning = vapply(results, `[[`, logical(1), "warning"),
  error = vapply(results, `[[`, character(1), "error")
)
write.csv(out, args[2], row.names = FALSE)
writeLines(c(
  sprintf("elapsed_s %.6f", elapsed),
  sprintf("cpu_s %.6f", cpu),
  sprintf("proteins %d", n),
  sprintf("ms_per_protein %.6f", 1000 * elapsed / n)
), args[3])
cat(sprintf("lmerTest: %d proteins in %.2f s (%.2f ms/protein)\n", n, elapsed, 1000 * elapsed / n))
