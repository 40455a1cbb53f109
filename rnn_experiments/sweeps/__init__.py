"""Sweeps (`-m`): every job checked before the first starts and a job that fails failing alone
(guard.py, with the one up-front check of a job: checks.py), the analysis when a sweep ends
(analyze.py), what a job does under a launcher (launch.py: threads per job, requeue on
preemption), SLURM (slurm.py) and the Optuna search, a sweeper of its own (search/)."""
