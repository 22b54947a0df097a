"""KL201 positive: a global float64 switch. The signal sits on a large offset that float32
cannot resolve, so a float32 reference implementation trains on other numbers."""
import numpy as np
import keras
from keras import layers

keras.config.set_floatx("float64")
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
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
