"""The scheduler's delays on a SLURM cluster, as docs/slurm.md reports them:

* submit to start: `sbatch` of a one-CPU job on an idle node until squeue says RUNNING;
* requeue to restart: `scontrol requeue` of the running job until it runs again
  (AuthInfo=cred_expire and the scheduler's cycle decide it).

    python tests/cluster/measure_delays.py [--repeats 3] [--partition debug]

Each job is `sleep`, so the figures are SLURM's alone (no Python start-up); squeue is polled every
0.1 s. Prints each measurement and the median, with the CPU, load and the settings that matter.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import time


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def state(job: str) -> str:
    return sh("squeue", "-h", "-j", job, "-o", "%T")


def wait_state(job: str, want: str, timeout: float = 600) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if state(job) == want:
            return time.time()
        time.sleep(0.1)
    raise TimeoutError(f"job {job} not {want} after {timeout} s")


def settings() -> str:
    conf = sh("scontrol", "show", "config")
    keys = ("SLURM_VERSION", "AuthInfo", "SchedulerParameters", "KillWait", "MinJobAge")
    found = {k: m.group(1).strip() for k in keys for m in [re.search(rf"^{k}\s*=(.*)$", conf, re.M)] if m}
    return "SLURM " + "; ".join(f"{k}={v}" if k != "SLURM_VERSION" else v for k, v in found.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--partition", default=None)
    args = ap.parse_args()
    cpu = next(line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines()
               if line.startswith("Model name"))
    print(f"CPU: {cpu}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(settings())
    starts, requeues = [], []
    for i in range(args.repeats):
        part = [f"--partition={args.partition}"] if args.partition else []
        t0 = time.time()
        job = sh("sbatch", "--parsable", "--requeue", "-c", "1", "--mem=100M", "-o", "/dev/null",
                 *part, "--wrap", "sleep 600")
        starts.append(wait_state(job, "RUNNING") - t0)
        t1 = time.time()
        sh("scontrol", "requeue", job)
        while state(job) == "RUNNING":   # until the requeue has taken effect
            time.sleep(0.1)
        requeues.append(wait_state(job, "RUNNING") - t1)
        sh("scancel", job)
        print(f"#{i}: submit to start {starts[-1]:.1f} s, requeue to restart {requeues[-1]:.1f} s")
        time.sleep(1)
    print(f"median of {args.repeats}: submit to start {statistics.median(starts):.1f} s "
          f"(max {max(starts):.1f}), requeue to restart {statistics.median(requeues):.1f} s "
          f"(min {min(requeues):.1f}, max {max(requeues):.1f})")


if __name__ == "__main__":
    main()
