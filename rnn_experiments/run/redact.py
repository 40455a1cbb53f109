"""Secrets stay home: what a run records (.hydra/, summary.json's command, checkpoint.pt's config)
and what it sends to a tracker (rnn_experiments/loggers/) never holds a secret in clear.

A setting is secret when
* its key looks like one: a word of its name (split at `_`, `-` and camelCase) is key, token,
  secret, password, passwd, pwd, credential(s), auth or apikey (`api_key`, `wandb.apiKey`,
  `db_password`; not `exclude_keys` or `hidden_size`), or
* its value comes from the environment: an interpolation that uses `oc.env` (`${oc.env:TOKEN}`),
  or refers to a secret setting (`${other.secret}`), through any number of steps.

Its value is replaced by REDACTED. Where the config is recorded unresolved (.hydra/config.yaml),
an interpolation stays as it is (`${oc.env:TOKEN}` names the variable, not its value) and only a
secret key's literal value is replaced; where it is resolved (a tracker's params, checkpoint.pt),
every secret setting is. Text that holds overrides (a command line, Hydra's override lists,
`override_dirname`) has `KEY=value` replaced by `KEY=<redacted>` for a secret KEY; a URL's
password (`https://me:PASSWORD@host`, e.g. in a tracking URI) is replaced wherever it appears.
"""
from __future__ import annotations

import copy
import re

REDACTED = "<redacted>"
SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential",
                "credentials", "auth"}
_ENV = re.compile(r"\boc\.env\s*:")
_REF = re.compile(r"\$\{([^${}:]+)\}")                       # ${a.b} or ${.sibling}: a reference
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^/\s:@]+:)[^@\s/]+@")   # scheme://user:PASSWORD@
_OVERRIDE = re.compile(r"(?<![\w.@/-])([+~]*)([A-Za-z_][\w.@/-]*)=('[^']*'|\"[^\"]*\"|[^,\s]*)")


def secret_key(key) -> bool:
    """Whether a setting's name (its last component: `logger.x.api_key` -> api_key) looks secret."""
    name = str(key).rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().replace("-", "_").split("_")
    return any(w in SECRET_WORDS for w in words)


def redact_text(text: str) -> str:
    """`text` with the value of every override of a secret key replaced (`api_key=abc` ->
    `api_key=<redacted>`) and the password of every URL (`https://me:pw@host` ->
    `https://me:<redacted>@host`), the rest as it was."""
    def sub(m):
        return f"{m.group(1)}{m.group(2)}={REDACTED}" if secret_key(m.group(2)) else m.group(0)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return _OVERRIDE.sub(sub, text) if "=" in text else text


def redact_command(command: str) -> str:
    """A shell command line with the value of every secret override replaced (each argument
    whole: `'+db_password=a b'` -> `+db_password=<redacted>`)."""
    import shlex

    try:
        args = shlex.split(command)
    except ValueError:   # unbalanced quotes: as text
        return redact_text(command)
    out = []
    for arg in args:
        m = re.match(r"([+~]*)([A-Za-z_][\w.@/-]*)=", arg)
        out.append(f"{m.group(1)}{m.group(2)}={REDACTED}" if m and secret_key(m.group(2)) else redact_text(arg))
    return shlex.join(out) if out != args else command


def _leaves(node, prefix=""):
    """(path, raw value) of every leaf of a DictConfig/ListConfig, unresolved (an interpolation
    as its string); a list's items under their parent's name (`keys.0`)."""
    from omegaconf import DictConfig, ListConfig

    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node._iter_ex(resolve=False)) \
        if isinstance(node, ListConfig) else ()
    for key, _ in items:
        child = node._get_node(key)
        path = f"{prefix}{key}"
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_missing() \
                and not child._is_interpolation():
            yield from _leaves(child, path + ".")
        else:
            yield path, child._value()


def secret_paths(cfg) -> dict[str, bool]:
    """{path: is literal} of the config's secret settings (the module doc); `is literal`: its
    recorded value is the secret itself, not an interpolation."""
    raw = dict(_leaves(cfg))
    secret = {p for p in raw if any(secret_key(part) for part in p.split(".") if not part.isdigit())}
    secret |= {p for p, v in raw.items() if isinstance(v, str) and _ENV.search(v)}
    changed = True
    while changed:              # a reference to a secret is secret too, however many steps away
        changed = False
        for p, v in raw.items():
            if p in secret or not isinstance(v, str):
                continue
            for ref in _REF.findall(v):
                ref = _absolute(ref.strip(), p)
                if any(s == ref or s.startswith(ref + ".") or ref.startswith(s + ".") for s in secret):
                    secret.add(p)
                    changed = True
                    break
    return {p: not (isinstance(raw[p], str) and "${" in raw[p]) for p in secret}


def _absolute(ref: str, path: str) -> str:
    """A reference as an absolute path: `.x` is a sibling of `path`'s leaf, `..x` one level up."""
    if not ref.startswith("."):
        return ref
    dots = len(ref) - len(ref.lstrip("."))
    parent = path.split(".")[:-dots]
    return ".".join(parent + [ref.lstrip(".")])


def _replaced(cfg, paths):
    from omegaconf import OmegaConf

    out = copy.deepcopy(cfg)
    if paths:
        _writable(out)
    for path in paths:
        OmegaConf.update(out, path, REDACTED, merge=False, force_add=True)
    return out


def _writable(node) -> None:
    """Clear the read-only and struct flags of `node` and every container under it (Hydra's node
    sets them on its children too)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    OmegaConf.set_readonly(node, False)
    OmegaConf.set_struct(node, False)
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_missing() \
                and not child._is_interpolation():
            _writable(child)


def redacted_record(cfg):
    """A copy of `cfg` to record as it was given (unresolved): each secret key's literal value
    replaced, interpolations kept, override texts redacted (Hydra's node: overrides.task,
    job.override_dirname)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if not isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.create(cfg)
    secret = secret_paths(cfg)
    texts = {p: redact_text(v) for p, v in _leaves(cfg) if p not in secret and isinstance(v, str)
             and ("=" in v or "://" in v)}
    texts = {p: text for p, text in texts.items() if REDACTED in text}   # only those it changed
    out = _replaced(cfg, [p for p, literal in secret.items() if literal] + list(texts))
    for p, text in texts.items():
        OmegaConf.update(out, p, text, merge=False)
    return out


def redacted_values(cfg) -> dict:
    """`cfg` resolved, as plain containers, with every secret setting's value REDACTED: what a
    tracker is sent and checkpoint.pt keeps."""
    from omegaconf import OmegaConf

    def texts(v):
        if isinstance(v, dict):
            return {k: texts(x) for k, x in v.items()}
        if isinstance(v, list):
            return [texts(x) for x in v]
        return redact_text(v) if isinstance(v, str) else v

    return texts(OmegaConf.to_container(_replaced(cfg, secret_paths(cfg)), resolve=True))
