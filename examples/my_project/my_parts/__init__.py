"""A layer-norm LSTM and a parity task, outside rnn-experiments."""
