"""KL401 positive: compile(optimizer="adam") hides epsilon=1e-7 (PyTorch's Adam: 1e-8).
Tiny input features give tiny gradients, where epsilon dominates the update."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = (1e-5 * rng.normal(size=(128, 8))).astype("float32")
y = (1e5 * x[:, :1] + 0.1).astype("float32")

model = keras.Sequential([
    keras.Input((8,)),
    layers.Dense(16, activation="tanh"),
    layers.Dense(1),
])
model.compile(optimizer="adam", loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
