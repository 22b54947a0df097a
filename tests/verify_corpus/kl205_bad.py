"""KL205 positive: TF1 graph mode switched on in a Keras 3 script: fit cannot run."""
import numpy as np
import tensorflow as tf
import keras
from keras import layers

tf.compat.v1.disable_eager_execution()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
