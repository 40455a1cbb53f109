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


def build_model(model_cfg, vocab_size: int, num_classes: int, pad_token: int | None = None):
    """The model `model_cfg` names; `pad_token` is the task's padding (for model.reset_at_padding)."""
    cls = MODELS[model_cfg.name]
    if hasattr(cls, "from_config"):
        return cls.from_config(model_cfg, vocab_size, num_classes)
    model = cls(vocab_size=vocab_size, num_classes=num_classes, embedding_dim=model_cfg.embedding_dim,
                hidden_size=model_cfg.hidden_size, init=model_cfg.init)
    model.log_softmax_dim = 0 if model_cfg.get("log_softmax_axis", "class") == "batch" else -1
    if model_cfg.get("reset_at_padding", False):
        model.reset_token = pad_token
    return model


__all__ = ["MODELS", "build_model", "count_params", "RecurrentClassifier", "LSTM", "PeepLSTM", "RNN", "GRU",
           "BiLSTM", "TextGenerator"]
