"""Port (residual MLP with LayerNormalization and Dropout), correct: compared after .eval()."""
import numpy as np
import torch
from torch import nn
import keras
from keras import layers

keras.utils.set_random_seed(0)
inputs = keras.Input((16,))
h = layers.Dense(16, activation="relu")(inputs)
h = layers.Dropout(0.3)(h)
h = layers.LayerNormalization(epsilon=1e-5)(layers.Add()([h, inputs]))
k_model = keras.Model(inputs, layers.Dense(4)(h))


class TorchResMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.3)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = self.drop(torch.relu(self.fc1(x)))
        return self.fc2(self.norm(h + x))


t_model = TorchResMLP()
t_model.eval()
