"""The names of the files the evaluation report writes into its folder
(radreport.metrics.report_html), apart from the code that draws them: a command checks
that its output folder can take them before it imports matplotlib or loads a model."""

REPORT_FILE, SAMPLES_FILE = "evaluation.html", "samples.csv"
PLOT_FILES = ("metric_comparison.png", "per_finding_f1.png", "report_lengths.png")
REPORT_FILES = (REPORT_FILE, SAMPLES_FILE, *PLOT_FILES)
