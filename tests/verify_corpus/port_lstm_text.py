"""Port (Embedding + LSTM text classifier): nn.LSTM without batch_first=True is fed
(batch, time, features). Planted: KL606 at the LSTM."""
import numpy as np
import torch
from torch import nn
import keras
from keras import layers

keras.utils.set_random_seed(0)
k_model = keras.Sequential([
    keras.Input((10,), dtype="int32"),
    layers.Embedding(40, 8),
    layers.LSTM(12),
    layers.Dense(1, activation="sigmoid"),
])


class TorchText(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 8)
        self.lstm = nn.LSTM(8, 12)
        self.fc = nn.Linear(12, 1)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))
        return torch.sigmoid(self.fc(out[:, -1]))


t_model = TorchText().eval()
