"""How a command runs, around the work it does: checks before Hydra starts (preflight.py), the
sweep's up-front check and end report (sweep.py), how each job ends and what it exits with
(job.py), the optional extras a command line may need (extras.py), and what a job does under a
launcher (launch.py: threads per job, requeue on preemption)."""
