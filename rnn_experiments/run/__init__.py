"""The run folder's contract, which training writes and the analysis, sweeps and search read:

    folder.py       what makes a folder a run, atomic writes, reading summary.json
    metrics.py      metrics.csv: its columns, the writer and its sinks
    summary.py      summary.json: status, final and best metrics, provenance
    checkpoint.py   checkpoint.pt / checkpoint_best.pt
    lock.py         run.lock: one process per run folder, its heartbeat
    status.py       the statuses a run may end with early (StopRun)
    provenance.py   git commit, versions, the command line, the sweep id
    readers.py      bounded readers of a run's YAML and CSV files
    multirun.py     a sweep folder's multirun.yaml: its job list and launcher
"""
