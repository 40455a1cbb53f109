"""The models. Each is a class that a config's `model` node names by `_target_` (conf/model/*.yaml);
`build_model` builds the one a node names (rnn_experiments/parts.py: what it accepts is its
constructor's signature)."""
from __future__ import annotations

from rnn_experiments.models.base import RecurrentClassifier, count_params
from rnn_experiments.models.bilstm import BiLSTM
from rnn_experiments.models.gru import GRU
from rnn_experiments.models.generator import TextGenerator
from rnn_experiments.models.lstm import LSTM
from rnn_experiments.models.peep_lstm import PeepLSTM
from rnn_experiments.models.rnn import RNN
from rnn_experiments.parts import build_part


def build_model(model_cfg, vocab_size: int, num_classes: int, pad_token: int | None = None):
    """The model the `model` node describes, given the dataset's sizes and its padding token
    (`pad_token`, for a model that takes it: the LSTM's model.reset_at_padding)."""
    return build_part(model_cfg, "model", vocab_size=vocab_size, num_classes=num_classes, pad_token=pad_token)


__all__ = ["build_model", "count_params", "RecurrentClassifier", "LSTM", "PeepLSTM", "RNN", "GRU",
           "BiLSTM", "TextGenerator"]
