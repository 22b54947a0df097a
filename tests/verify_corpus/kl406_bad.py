"""KL406 positive: rows sorted by class, validation_split takes the last 20% (all class 2)."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
y = np.repeat(np.arange(3), 40)
x = (rng.normal(size=(120, 4)) + y[:, None]).astype("float32")

model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, validation_split=0.2, batch_size=16, epochs=1, verbose=0)
