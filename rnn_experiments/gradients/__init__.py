"""Gradient-flow study (course Question 1.1 c): how strongly does the loss at the last step still
depend on the hidden state t steps back?

    measure.py   ||∂L^(T)/∂h^(t)|| and ||∂L^(T)/∂x^(t)|| for every t, for one batch
    study.py     the study: measure at chosen training steps while training as the loop does
    plot.py      seed-averaged curves against the distance T - t, log-scale y axis

Commands: `python -m rnn_experiments.measure_gradients` and `python -m rnn_experiments.plot_gradients`.
"""
from rnn_experiments.gradients.measure import grad_norms_per_step

__all__ = ["grad_norms_per_step"]
