"""Port (CNN + BatchNormalization), correct: nn.BatchNorm2d(eps=1e-3, momentum=0.01) matches
Keras's BatchNormalization (epsilon 1e-3, momentum 0.99 = 1 - 0.01)."""
import numpy as np
import torch
from torch import nn
import keras
from keras import layers

keras.utils.set_random_seed(0)
k_model = keras.Sequential([
    keras.Input((8, 8, 3)),
    layers.Conv2D(6, 3, padding="valid"),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.GlobalAveragePooling2D(),
    layers.Dense(2),
])
x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
k_model.compile(optimizer="sgd", loss="mse")
k_model.fit(x, np.zeros((16, 2), "float32"), epochs=1, verbose=0)
bn = k_model.layers[1]
bn.moving_variance.assign(np.full(6, 0.004, "float32"))  # trained statistics: small variances


class TorchCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.bn = nn.BatchNorm2d(6, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


t_model = TorchCNN().eval()
