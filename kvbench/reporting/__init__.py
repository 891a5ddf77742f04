"""Reporting on finished runs: charts, regression comparison and a reproducibility appendix.

Everything here reads run directories (see `kvbench.results`) after the runs have ended; nothing is
computed during a run. The pieces:

    runs.py         find run directories, load the complete ones into one tidy pandas table
    sweeps.py       what a Hydra sweep directory was asked to run (to name the jobs that are missing)
    series.py       group runs into scenarios (what is held fixed) and series (one per strategy)
    stats.py        means and 95% bootstrap intervals over seeds; intervals of a change
    latency.py      latency percentiles from the requests table; the highest rate under a latency bound
    tables.py       the summary tables (report and appendix)
    styles.py       one colour per strategy, figure style, saving PNG + PDF
    charts/         one module per chart
    markdown.py     Markdown writers; latex.py: LaTeX writers (booktabs, longtable, figures)
    report.py       `kvbench report`
    compare.py      `kvbench compare` (matching.py pairs runs, deltas.py judges them, noise.py pools seeds)
    appendix.py     `kvbench appendix` (environment.py gathers versions, datasets, seeds, commands)
"""
