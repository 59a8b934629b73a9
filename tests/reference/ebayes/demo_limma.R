# limma's squeezeVar on exactly the variances pepmix moderates on the demo (demo_inputs.csv.gz,
# written by demo_inputs.py): robust and non-robust prior per contrast.
#   Rscript tests/reference/ebayes/demo_limma.R
suppressPackageStartupMessages(library(limma))
args <- commandArgs(trailingOnly = FALSE)
here <- dirname(normalizePath(sub("^--file=", "", args[grep("^--file=", args)])))
inputs <- read.csv(file.path(here, "demo_inputs.csv.gz"))
rows <- list()
for (contrast in unique(inputs$contrast)) {
  part <- inputs[inputs$contrast == contrast, ]
  plain <- squeezeVar(part$s2, part$df)
  robust <- squeezeVar(part$s2, part$df, robust = TRUE)
  rows[[contrast]] <- data.frame(
    contrast = contrast, protein = part$protein,
    var_post = plain$var.post, var_prior = plain$var.prior, df_prior = plain$df.prior,
    var_post_robust = robust$var.post, var_prior_robust = robust$var.prior,
    df_prior_robust = robust$df.prior
  )
}
out <- do.call(rbind, rows)
con <- gzfile(file.path(here, "demo_limma.csv.gz"), "w")
write.csv(format(out, digits = 17), con, row.names = FALSE, quote = FALSE)
close(con)
cat(sprintf("limma %s: %d rows\n", packageVersion("limma"), nrow(out)))
