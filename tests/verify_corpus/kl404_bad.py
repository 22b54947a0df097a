"""KL404 positive: a linear final layer with a probability loss (string losses default to
from_logits=False): the loss clips the raw outputs to [1e-7, 1 - 1e-7]."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 6)).astype("float32")
labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
y = np.eye(3, dtype="float32")[labels]

model = keras.Sequential([
    keras.Input((6,)),
    layers.Dense(16, activation="relu"),
    layers.Dense(3),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy")
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
