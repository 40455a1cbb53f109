"""The models. `MODELS` maps a config's `model.name` to a class; `build_model` constructs one."""
from __future__ import annotations

from rnn_experiments.models.base import RecurrentClassifier, count_params
from rnn_experiments.models.bilstm import BiLSTM
from rnn_experiments.models.gru import GRU
from rnn_experiments.models.generator import TextGenerator
from rnn_experiments.models.lstm import LSTM
from rnn_experiments.models.peep_lstm import PeepLSTM
from rnn_experiments.models.rnn import RNN

MODELS = {
    "lstm": LSTM,
    "peep_lstm": PeepLSTM,
    "rnn": RNN,
    "gru": GRU,
    "bilstm": BiLSTM,
    "generator": TextGenerator,  # character LSTM for text (forward -> (B, T, V))
}


def build_model(model_cfg, vocab_size: int, num_classes: int):
    cls = MODELS[model_cfg.name]
    return cls.from_config(model_cfg, vocab_size, num_classes) if hasattr(cls, "from_config") else cls(
        vocab_size=vocab_size,
        num_classes=num_classes,
        embedding_dim=model_cfg.embedding_dim,
        hidden_size=model_cfg.hidden_size,
        init=model_cfg.init,
    )


__all__ = ["MODELS", "build_model", "count_params", "RecurrentClassifier", "LSTM", "PeepLSTM", "RNN", "GRU",
           "BiLSTM", "TextGenerator"]
