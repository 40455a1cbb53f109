import torch.nn.functional as F


class Brier:
    """Mean squared distance of the predicted distribution from the one-hot target."""
    higher_is_better = False

    def __call__(self, log_probs, y):
        p = log_probs.exp()                                   # (N, C) or (N, T, V)
        target = F.one_hot(y, p.shape[-1]).to(p.dtype)
        return ((p - target) ** 2).sum(-1).mean()
