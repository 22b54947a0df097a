"""KL601 positive: Keras BatchNormalization with its defaults (momentum 0.99, epsilon 1e-3),
ported to PyTorch's nn.BatchNorm1d defaults (momentum 0.1, eps 1e-5)."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = (3.0 + 2.0 * rng.normal(size=(256, 6))).astype("float32")
y = (x[:, :1] - x[:, 1:2]).astype("float32")

model = keras.Sequential([
    keras.Input((6,)),
    layers.Dense(16, activation="relu"),
    layers.BatchNormalization(),
    layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
