"""KL601 positive, two-input functional model (Concatenate) with a BatchNormalization at
Keras's defaults (momentum 0.99, epsilon 1e-3) against nn.BatchNorm1d's (0.1, 1e-5)."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
a_in, b_in = keras.Input((4,), name="a"), keras.Input((3,), name="b")
shared = layers.Dense(6, activation="relu")
h = layers.Concatenate()([shared(a_in), layers.Dense(6)(b_in)])
h = layers.BatchNormalization()(h)
model = keras.Model([a_in, b_in], layers.Dense(1)(h))
rng = np.random.default_rng(0)
xa = (2.0 + rng.normal(size=(128, 4))).astype("float32")
xb = rng.normal(size=(128, 3)).astype("float32")
y = (xa[:, :1] - xb[:, :1]).astype("float32")
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit([xa, xb], y, batch_size=32, epochs=1, verbose=0)
