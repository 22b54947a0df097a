"""KL102 positive: only NumPy is seeded; Keras layers draw their initial seeds from Python's
random, so the weights differ from run to run."""
import numpy as np
import keras
from keras import layers

np.random.seed(0)
x = np.random.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
