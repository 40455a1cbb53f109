"""The configs of my_parts (model/, dataset/, metrics/, hparams_search/: the groups of
rnn-experiments' conf/), on every command's search path as pkg://my_parts.conf."""
