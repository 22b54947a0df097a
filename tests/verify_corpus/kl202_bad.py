"""KL202 positive: set_floatx("float64") after the model exists has no effect on it:
the model still trains in float32 on data that float32 cannot resolve."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
signal = rng.normal(size=(128, 4))
x = 1000.0 + 1e-3 * signal
y = signal[:, :1] - signal[:, 1:2]

model = keras.Sequential([
    keras.Input((4,)),
    layers.Normalization(mean=1000.0, variance=1e-6),
    layers.Dense(8, activation="tanh"),
    layers.Dense(1),
])
keras.config.set_floatx("float64")
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
