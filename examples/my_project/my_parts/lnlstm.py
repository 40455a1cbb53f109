import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNormLSTM(nn.Module):
    """An LSTM whose four gate pre-activations are layer-normalised:

        [g, i, f, o] = LN(W_x e_t + W_h h_{t-1}),  c_t = tanh(g) * σ(i) + c_{t-1} * σ(f),
        h_t = tanh(c_t) * σ(o),  log ŷ = log_softmax(W_p h_T + b_p)
    """
    kind = "classifier"

    def __init__(self, vocab_size: int, num_classes: int, hidden_size: int = 64, embedding_dim: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.W_x = nn.Linear(embedding_dim, 4 * hidden_size, bias=False)
        self.W_h = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(4 * hidden_size)
        self.readout = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embedding(x)                                  # (B, T, E)
        B, T, _ = e.shape
        h = c = e.new_zeros(B, self.W_h.in_features)           # (B, H)
        for t in range(T):
            g, i, f, o = self.norm(self.W_x(e[:, t]) + self.W_h(h)).chunk(4, dim=-1)
            c = torch.tanh(g) * torch.sigmoid(i) + c * torch.sigmoid(f)
            h = torch.tanh(c) * torch.sigmoid(o)
        return F.log_softmax(self.readout(h), dim=-1)          # (B, C)
