"""The commands (`rnn-train`, `rnn-analyze`, `rnn-generate`, `rnn-measure-gradients`,
`rnn-plot-gradients`, `rnn-download`, `rnn-bench`; also `python -m rnn_experiments.<command>`)
and what runs around each: checks before Hydra starts (preflight.py), how a job ends and what it
exits with (job.py), `--help` (help.py), the working-folder check made before torch is imported
(startup.py)."""
