"""KL403 clean twin: each model has its own Adam."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)

student = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
teacher = keras.Sequential([keras.Input((4,)), layers.Dense(16, activation="relu"), layers.Dense(1)])
student.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
teacher.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
teacher.fit(x, y, batch_size=16, epochs=1, verbose=0)
student.fit(x, y, batch_size=16, epochs=1, verbose=0)
