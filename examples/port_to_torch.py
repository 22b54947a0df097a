"""Port a Keras block to PyTorch and check that both give the same numbers."""
import numpy as np
import keras
import torch
from torch import nn

keras.utils.set_random_seed(0)

keras_model = keras.Sequential([
    keras.Input((8,)),
    keras.layers.Dense(16),
    keras.layers.BatchNormalization(),
    keras.layers.LayerNormalization(),
])
keras_opt = keras.optimizers.Adam(learning_rate=1e-3)


class TorchBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.ln = nn.LayerNorm(16)

    def forward(self, x):
        return self.ln(self.bn(self.dense(x)))


torch_model = TorchBlock()
torch_opt = torch.optim.Adam(torch_model.parameters(), lr=1e-3)

kernel, bias = keras_model.layers[0].get_weights()
torch_model.dense.weight.data = torch.from_numpy(kernel)
torch_model.dense.bias.data = torch.from_numpy(bias)

x = np.random.rand(4, 8).astype("float32")
with torch.no_grad():
    diff = np.abs(keras_model.predict(x) - torch_model(torch.from_numpy(x)).numpy()).max()
print("max |diff|", diff)
