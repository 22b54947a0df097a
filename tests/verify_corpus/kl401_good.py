"""KL401 clean twin: the optimizer written out; its values are mirrored in the port,
and the features have a normal scale."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 8)).astype("float32")
y = (x[:, :1] + 0.1).astype("float32")

model = keras.Sequential([
    keras.Input((8,)),
    layers.Dense(16, activation="tanh"),
    layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7), loss="mse")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
