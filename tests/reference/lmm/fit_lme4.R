#!/usr/bin/env Rscript
# Fit every data set of datasets.csv.gz with the model of models.csv using
# lmerTest::lmer (REML, default lmerControl) and write lme4_reference.json.
#
# Run from the repository root (after generate.py):
#   Rscript tests/reference/lmm/fit_lme4.R
# Optional arguments: [directory] [dataset ids ...] (ids restrict the run, for debugging;
# the JSON is then written as lme4_reference.partial.json).
#
# Needs: lme4, lmerTest, jsonlite.  Only this script needs R; the tests read the JSON.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f) == 1) dirname(normalizePath(f)) else "tests/reference/lmm"
})
dir <- if (length(args) >= 1) args[1] else script_dir
only <- if (length(args) >= 2) args[-1] else character(0)

data <- read.csv(file.path(dir, "datasets.csv.gz"), colClasses = c(
  dataset = "character", feature = "character", run = "character",
  sample = "character", condition = "character", batch = "character", y = "numeric"
))
models <- read.csv(file.path(dir, "models.csv"), colClasses = "character")
if (length(only)) models <- models[models$dataset %in% only, , drop = FALSE]

ISSINGULAR_TOL <- 1e-4 # lme4 default of isSingular()
NEAR_OPT <- 1e-6 # REML criterion tolerance for "as good as the best fit"

# Named numeric vector -> list, so jsonlite writes a JSON object (keeps names,
# and a length-1 vector stays an object rather than becoming a bare scalar).
named <- function(x) as.list(setNames(as.numeric(x), names(x)))

# Character vector that stays a JSON array even when of length 0 or 1.
strs <- function(x) I(as.character(unlist(x)))

# Run expr; collect warnings and messages (muffled) instead of printing them.
capture <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  value <- withCallingHandlers(
    expr,
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs <<- c(msgs, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  list(value = value, warnings = warns, messages = msgs)
}

# Factor with levels in sorted order (condition A, B, C; batch b1, b2: the
# first level is the treatment-coding reference).
sorted_factor <- function(x) factor(x, levels = sort(unique(x)))

# Evaluate the REML criterion, profiled beta and sigma at a given theta with
# lme4's own deviance function (no optimisation): lets the Python engine be
# tested away from the optimum and on the boundary.
reml_at <- function(devfun, theta, p) {
  rho <- environment(devfun)
  crit <- devfun(theta)
  n <- length(rho$resp$y)
  pwrss <- rho$resp$wrss() + rho$pp$sqrL(1)
  beta <- rho$pp$beta(1)
  list(crit = crit, beta = beta, sigma = sqrt(pwrss / (n - p)))
}

fit_one <- function(id, random, fixed) {
  d <- data[data$dataset == id, , drop = FALSE]
  for (v in c("feature", "run", "sample", "condition", "batch")) d[[v]] <- sorted_factor(d[[v]])
  terms <- strsplit(random, "+", fixed = TRUE)[[1]]
  fstr <- paste0(
    "y ~ ", gsub("+", " + ", fixed, fixed = TRUE), " + ",
    paste0("(1 | ", terms, ")", collapse = " + ")
  )
  out <- list(
    dataset = id, formula = fstr, random_terms = strs(terms),
    fixed_terms = strs(strsplit(fixed, "+", fixed = TRUE)[[1]]),
    n_obs = nrow(d), status = "ok", error = NA
  )

  res <- tryCatch(
    capture(lmerTest::lmer(as.formula(fstr), data = d, REML = TRUE)),
    error = function(e) e
  )
  if (inherits(res, "error")) {
    out$status <- "error"
    out$error <- conditionMessage(res)
    return(out)
  }
  fit <- res$value
  out$warnings <- strs(res$warnings)
  out$messages <- strs(res$messages)
  out$class <- class(fit)[1]

  # theta in lme4's internal order (terms sorted by decreasing number of levels),
  # named by grouping factor.
  theta <- getME(fit, "theta")
  grp_order <- names(getME(fit, "cnms"))
  names(theta) <- grp_order
  out$theta_order <- strs(grp_order)
  out$theta <- named(theta)
  out$n_groups <- named(ngrps(fit))
  out$sigma <- sigma(fit)
  vc <- as.data.frame(VarCorr(fit))
  vnames <- ifelse(vc$grp == "Residual", "residual", vc$grp)
  out$varcomp <- named(setNames(vc$vcov, vnames))
  out$sdcomp <- named(setNames(vc$sdcor, vnames))
  out$REMLcrit <- REMLcrit(fit)
  out$logLik <- as.numeric(logLik(fit))
  out$df_logLik <- attr(logLik(fit), "df")
  beta <- fixef(fit)
  out$beta_names <- strs(names(beta))
  out$beta <- named(beta)
  V <- as.matrix(vcov(fit))
  out$vcov_beta <- unname(V[names(beta), names(beta), drop = FALSE])
  out$isSingular <- isSingular(fit, tol = ISSINGULAR_TOL)
  oi <- fit@optinfo
  out$optimizer <- oi$optimizer
  out$optimizer_conv <- oi$conv$opt
  out$feval <- oi$feval
  out$conv_messages <- strs(oi$conv$lme4$messages)
  out$optinfo_warnings <- strs(oi$warnings)
  # "warned": an R warning was raised while fitting (convergence checks of lme4,
  # or lmerTest's Hessian check).  lme4's singular-fit note is a message, not a warning.
  out$warned <- length(out$warnings) > 0

  # Satterthwaite tests: every non-reference condition vs reference; C - B.
  levs <- levels(d$condition)
  ref <- levs[1]
  cons <- list()
  L0 <- setNames(rep(0, length(beta)), names(beta))
  for (lv in levs[-1]) {
    L <- L0
    L[paste0("condition", lv)] <- 1
    cons[[length(cons) + 1]] <- list(name = paste(lv, "-", ref), L = L)
  }
  if (length(levs) == 3) {
    L <- L0
    L[paste0("condition", levs[3])] <- 1
    L[paste0("condition", levs[2])] <- -1
    cons[[length(cons) + 1]] <- list(name = paste(levs[3], "-", levs[2]), L = L)
  }
  out$contrasts <- lapply(cons, function(cc) {
    r <- tryCatch(
      capture(lmerTest::contest1D(fit, cc$L, ddf = "Satterthwaite")),
      error = function(e) e
    )
    rec <- list(name = cc$name, L = named(cc$L))
    if (inherits(r, "error")) {
      return(c(rec, list(
        estimate = NA, se = NA, df = NA, t = NA, p = NA,
        error = conditionMessage(r), warnings = strs(character(0))
      )))
    }
    t1 <- r$value
    c(rec, list(
      estimate = t1[["Estimate"]], se = t1[["Std. Error"]], df = t1[["df"]],
      t = t1[["t value"]], p = t1[["Pr(>|t|)"]], error = NA,
      warnings = strs(c(r$warnings, r$messages))
    ))
  })

  # Conditional modes (BLUPs) per term, named by level.
  re <- ranef(fit)
  out$ranef <- lapply(setNames(names(re), names(re)), function(g) {
    named(setNames(re[[g]][["(Intercept)"]], rownames(re[[g]])))
  })

  # REML criterion, profiled beta and sigma at fixed theta values.
  dev <- tryCatch(
    capture(lme4::lmer(as.formula(fstr), data = d, REML = TRUE, devFunOnly = TRUE))$value,
    error = function(e) NULL
  )
  if (!is.null(dev)) {
    k <- length(theta)
    last <- if (k == 1) 0 else c(1, rep(0, k - 1)) # a point on the boundary
    pts <- list(theta, rep(1, k), rep(0.25, k), last)
    out$reml_at_theta <- lapply(pts, function(th) {
      r <- reml_at(dev, as.numeric(th), length(beta))
      list(
        theta = named(setNames(as.numeric(th), grp_order)), REMLcrit = r$crit,
        beta = named(setNames(r$beta, names(beta))), sigma = r$sigma
      )
    })
  }

  # The same model refitted with other optimizers (lme4::lmer, REML): where the
  # default nloptwrap stops early on a flat criterion these show the best value
  # lme4 can reach, and the spread of theta across them shows how well theta is
  # determined at all.
  controls <- list(
    bobyqa = lmerControl(optimizer = "bobyqa"),
    Nelder_Mead = lmerControl(optimizer = "Nelder_Mead"),
    nloptwrap_tight = lmerControl(
      optimizer = "nloptwrap",
      optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12, xtol_rel = 1e-10, maxeval = 1e5)
    )
  )
  out$alt_optimizers <- list()
  for (opt in names(controls)) {
    a <- tryCatch(
      capture(lme4::lmer(as.formula(fstr), data = d, REML = TRUE, control = controls[[opt]])),
      error = function(e) e
    )
    out$alt_optimizers[[opt]] <- if (inherits(a, "error")) {
      list(status = "error", error = conditionMessage(a))
    } else {
      th <- getME(a$value, "theta")
      names(th) <- names(getME(a$value, "cnms"))
      list(
        status = "ok", REMLcrit = REMLcrit(a$value), theta = named(th[grp_order]),
        sigma = sigma(a$value), warnings = strs(a$warnings)
      )
    }
  }
  # Best criterion over the four fits, its theta, and the spread of theta over
  # the fits within NEAR_OPT of it (how flat the optimum is; 0 when only one).
  ok <- Filter(function(a) a$status == "ok", out$alt_optimizers)
  crits <- c(default = out$REMLcrit, vapply(ok, `[[`, 0, "REMLcrit"))
  thetas <- rbind(default = theta, do.call(rbind, lapply(ok, function(a) unlist(a$theta)[grp_order])))
  best <- which.min(crits)
  out$REMLcrit_min <- crits[[best]]
  out$REMLcrit_min_by <- names(crits)[best]
  out$theta_best <- named(thetas[best, ])
  near <- thetas[crits <= crits[[best]] + NEAR_OPT, , drop = FALSE]
  out$theta_spread <- named(apply(near, 2, function(x) diff(range(x))))
  out
}

results <- list()
for (i in seq_len(nrow(models))) {
  m <- models[i, ]
  t0 <- proc.time()[["elapsed"]]
  results[[m$dataset]] <- fit_one(m$dataset, m$random, m$fixed)
  r <- results[[m$dataset]]
  cat(sprintf(
    "%s %-22s %-16s %s singular=%s warned=%s (%.1fs)\n", m$dataset, m$random, m$fixed,
    r$status, isTRUE(r$isSingular), isTRUE(r$warned), proc.time()[["elapsed"]] - t0
  ))
}

out <- list(
  meta = list(
    R_version = R.version.string,
    lme4_version = as.character(packageVersion("lme4")),
    lmerTest_version = as.character(packageVersion("lmerTest")),
    Matrix_version = as.character(packageVersion("Matrix")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    call = "lmerTest::lmer(formula, data, REML = TRUE), default lmerControl()",
    isSingular_tol = ISSINGULAR_TOL,
    near_optimum_tol = NEAR_OPT,
    contrast_ddf = "Satterthwaite (lmerTest::contest1D)",
    factor_levels = "sorted; first level is the treatment-coding reference",
    digits = "15 significant digits (jsonlite digits = NA)",
    n_datasets = length(results)
  ),
  datasets = results
)
fname <- if (length(only)) "lme4_reference.partial.json" else "lme4_reference.json"
writeLines(
  toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = FALSE),
  file.path(dir, fname)
)
cat("wrote", file.path(dir, fname), "\n")
