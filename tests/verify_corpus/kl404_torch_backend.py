"""KL404 on the torch backend, chosen by the script before importing Keras: softmax output
with from_logits=True applies the softmax twice there (harmless only on TensorFlow)."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 6)).astype("float32")
labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
y = np.eye(3, dtype="float32")[labels]

model = keras.Sequential([
    keras.Input((6,)),
    layers.Dense(16, activation="relu"),
    layers.Dense(3, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
