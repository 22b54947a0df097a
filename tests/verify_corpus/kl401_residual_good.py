"""KL401 positive, residual functional model (Add): compile(optimizer=keras.optimizers.SGD(learning_rate=0.01)) hides
SGD has no hidden default that differs."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
inputs = keras.Input((8,))
h = layers.Dense(8, activation="relu")(inputs)
h = layers.Add()([h, inputs])
h = layers.LayerNormalization(epsilon=1e-5)(h)
outputs = layers.Dense(1)(layers.Add()([layers.Dense(8)(h), h]))
model = keras.Model(inputs, outputs)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype("float32")
y = x[:, :2].sum(axis=1, keepdims=True)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
