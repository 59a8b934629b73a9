# Reference values for the R arithmetic kept by hand in pepmix.inference.limma._numeric:
# uniroot (zeroin), mean, mean(trim = ), quantile(type = 7).
#
# Regenerate (from anywhere):  Rscript tests/reference/ebayes/r_arithmetic.R
# Functions given to uniroot use only +, -, * (exact IEEE arithmetic, the same in R and Python on
# every platform), so the root finder's iterates can be compared bit for bit.

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference/ebayes"
f17 <- function(v) sprintf("%.17g", v)

set.seed(20261206)
funs <- list(
  cubic = function(x) x * x * x - 2 * x - 5,
  shifted = function(x) (x - 0.3) * (x * x + 1),
  square = function(x) x * x - 2,
  flat = function(x) (x - 1.5) * (x - 1.5) * (x - 1.5) + 1e-3 * (x - 1.5)
)
brackets <- list(c(2, 3), c(-1, 2), c(0, 10), c(0, 4))
tols <- c(1e-8, 1e-8, 1e-8, 1e-8, 1e-3, 1e-12)
rows <- list()
for (k in seq_along(funs)) {
  f <- funs[[k]]
  ab <- brackets[[k]]
  for (tol in unique(tols)) {
    r <- uniroot(f, ab, f.lower = f(ab[1]), f.upper = f(ab[2]), tol = tol)
    rows[[length(rows) + 1]] <- data.frame(
      fun = names(funs)[k], lower = ab[1], upper = ab[2], tol = tol, root = f17(r$root)
    )
  }
}
write.csv(do.call(rbind, rows), file.path(out_dir, "uniroot.csv"), row.names = FALSE,
          quote = FALSE)

sets <- list()
outs <- list()
for (k in 1:60) {
  n <- sample(c(3:40, 100, 257), 1)
  x <- rnorm(n, sample(c(0, 5, -3), 1), exp(rnorm(1)))
  if (k %% 5 == 0) x <- round(x, 1)  # ties
  trim <- c(0.05, 0.1, 0.2)[(k %% 3) + 1]
  sets[[k]] <- data.frame(set = k, x = f17(x))
  q <- quantile(x, c(trim, 0.9), type = 7, names = FALSE)
  outs[[k]] <- data.frame(set = k, n = n, trim = trim, mean = f17(mean(x)),
                          trimmed_mean = f17(mean(x, trim = trim)), q_trim = f17(q[1]),
                          q_90 = f17(q[2]))
}
gz <- gzfile(file.path(out_dir, "r_arithmetic_inputs.csv.gz"), "w")
write.csv(do.call(rbind, sets), gz, row.names = FALSE, quote = FALSE)
close(gz)
write.csv(do.call(rbind, outs), file.path(out_dir, "r_arithmetic.csv"), row.names = FALSE,
          quote = FALSE)
