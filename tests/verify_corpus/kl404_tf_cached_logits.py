"""KL404 on the TensorFlow backend: softmax output with from_logits=True. Keras 3 reuses the
logits cached on the softmax output, so this is harmless here (it is not on torch/JAX)."""
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
    layers.Dense(3, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
