"""Hyper-parameter search with Optuna (`hparams_search=...`, `hydra/sweeper=optuna`; extra [optuna]).

The Hydra sweeper (hydra_plugins/rnn_experiments_sweeper/ holds the thin plugin class Hydra
finds) runs `Search` (sweeper.py), an ask-and-tell loop over a study kept in a storage:

    space.py    the search space from hydra.sweeper.params and the command line (Hydra's grammar)
    study.py    the study's storage (a journal file in the sweep folder unless one is given),
                sampler (re-seeded on resume, never proposing a parameter set twice) and pruner
    checks.py   `check_search`: every setting and every value the space can produce checked
                before any trial starts (one line, exit status 2)
    sweeper.py  the loop: ask a batch, launch it through the chosen Hydra launcher, tell each
                trial what its run folder says (completed, pruned, failed)
    seeds.py    a trial of k seeds (seeds_per_trial): its runs' seeds and folders, its value (their
                mean) and spread from its runs' outcomes, the per-seed reports the pruner's mean is of
    trial.py    inside a trial's job: the metrics sink that reports the held-out accuracy at each
                evaluation and stops the run (status pruned) when the pruner says so (k seeds: on
                the mean over the seeds at that step, and every run of the trial stops)
    report.py   the trials table, best run folder, parameter importances, optimisation history,
                optimization_results.yaml (at the end of a search and from rnn-analyze)
"""


# the plugin class Hydra instantiates for hydra/sweeper=optuna (conf/hydra/sweeper/optuna.yaml)
SWEEPER = "hydra_plugins.rnn_experiments_sweeper.optuna_sweeper.OptunaSweeper"
STUDY_FILE = "study.yaml"   # in a search's sweep folder: its study's storage and name (rnn-analyze reads it)


class SearchError(ValueError):
    """A search setting or search-space entry that cannot work; the message is one line."""
