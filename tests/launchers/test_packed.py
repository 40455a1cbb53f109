"""`hydra/launcher=packed` (rnn_experiments/sweeps/pack.py): a sweep's seeds as packs, each member
a normal run folder that the analysis reads like any other."""
from __future__ import annotations

import json

import pytest

from conftest import TINY, run_command
from rnn_experiments.analysis.collect import collect


@pytest.mark.slow   # a whole sweep (tests/conftest.py: tiers)
def test_a_seeds_sweep_runs_as_one_pack_of_normal_run_folders(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_command("rnn-train", "-m", "seed=0,1,2", "model=lstm,gru", *TINY, "train.threads=1",
                       "hydra/launcher=packed", "hydra.launcher.pack_size=2",
                       "hydra.callbacks.analyze.formats=[png]", f"hydra.sweep.dir={sweep}")
    assert done.code == 0, done.err[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert len(jobs) == 6
    summaries = {p.name: json.loads((p / "summary.json").read_text()) for p in jobs}
    packs = {}
    for name, s in summaries.items():
        assert s["status"] == "completed" and s["step"] == 20
        for f in ("metrics.csv", "checkpoint.pt", "checkpoint_best.pt", "train.log", ".hydra/config.yaml"):
            assert (sweep / name / f).exists(), (name, f)
        if "pack" in s:
            packs.setdefault(tuple(s["pack"]["members"]), []).append(name)
    # 3 seeds a model in packs of at most 2: a pack of 2 and one run alone (no pack record) each
    assert sorted(map(sorted, packs.values())) == sorted(map(sorted, map(list, packs)))
    assert sorted(len(m) for m in packs) == [2, 2]
    assert sum("pack" not in s for s in summaries.values()) == 2
    for members in packs.values():   # one model, two seeds
        assert len({summaries[n]["seed"] for n in members}) == 2
        for name in members:
            seed = summaries[name]["seed"]
            assert f"seed={seed}" in (sweep / name / ".hydra/overrides.yaml").read_text()
            log = (sweep / name / "train.log").read_text()
            assert log.count("step 20/20") == 1       # its own progress lines only
    runs = collect([sweep])
    shares = runs.groupby("run_dir")["wall_time_s"].first()
    for name, s in summaries.items():
        expected = s["wall_time_s"] / s.get("pack", {"size": 1})["size"]
        assert shares[str(sweep / name)] == pytest.approx(expected)
    assert (sweep / "analysis" / "summary.md").is_file()


@pytest.mark.slow   # a whole sweep, two worker processes
def test_packs_run_side_by_side_with_n_jobs_each_with_its_share_of_the_cores(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_command("rnn-train", "-m", "seed=0,1,2,3", *TINY, "hydra/launcher=packed",
                       "hydra.launcher.pack_size=2", "hydra.launcher.n_jobs=2",
                       "hydra.callbacks.analyze.formats=[png]", f"hydra.sweep.dir={sweep}")
    assert done.code == 0, done.err[-3000:]
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(4)]
    assert all(s["status"] == "completed" and s["pack"]["size"] == 2 for s in summaries)
    assert summaries[0]["pack"]["members"] == ["0", "1"] and summaries[2]["pack"]["members"] == ["2", "3"]
    assert summaries[0]["pid"] == summaries[1]["pid"] != summaries[2]["pid"] == summaries[3]["pid"]
    assert {s["threads"] for s in summaries} == {1}      # 2 cores // 2 packs at once
