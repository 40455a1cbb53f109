"""Gradient-flow study (course Question 1.1 c): how strongly does the loss at the last step still
depend on the hidden state t steps back?

    measure.py   ||∂L^(T)/∂h^(t)|| and ||∂L^(T)/∂x^(t)|| for every t, for one batch
    study.py     the study's config schema and loop: measure at chosen training steps
    plot.py      seed-averaged curves against the distance T - t, log-scale y axis
    __main__.py  `python -m rnn_experiments.gradients -m model=rnn,lstm,peep_lstm seed=0,1,2`
"""
from rnn_experiments.gradients.measure import grad_norms_per_step

__all__ = ["grad_norms_per_step"]
