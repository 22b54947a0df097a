"""KL604 positive: a square 6x6 Dense kernel copied into a PyTorch weight without .T runs,
but computes with the transposed matrix."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((6,)), layers.Dense(6, activation="tanh"), layers.Dense(1)])
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
y = x[:, :1]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
