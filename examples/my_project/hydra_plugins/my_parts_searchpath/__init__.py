"""Puts pkg://my_parts.conf on the search path of every Hydra app, rnn-train's included: Hydra
imports every module under the `hydra_plugins` namespace and calls each SearchPathPlugin."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MyPartsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="my-parts", path="pkg://my_parts.conf")
