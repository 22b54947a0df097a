"""KL201 clean twin: default float32 precision, like the reference implementation."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
signal = rng.normal(size=(128, 4))
x = signal
y = signal[:, :1] - signal[:, 1:2]

model = keras.Sequential([
    keras.Input((4,)),
    layers.Normalization(mean=0.0, variance=1.0),
    layers.Dense(8, activation="tanh"),
    layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
