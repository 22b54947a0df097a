"""A clean functional program for "every catalog code answers": seeded first, explicit SGD,
batched shuffled tf.data, float32, a final linear layer with MSE, nothing to port."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64).batch(16)

inputs = keras.Input((4,))
outputs = layers.Dense(1)(layers.Dense(8, activation="tanh")(inputs))
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(ds, epochs=1, verbose=0)
