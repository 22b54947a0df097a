"""A CNN with a layer the PyTorch reference does not build (UpSampling2D): the KL401/KL6xx
experiments answer inconclusive, naming the layer."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((4, 4, 2)),
    layers.Conv2D(4, 3, strides=2, padding="same"),
    layers.UpSampling2D(),
    layers.GlobalAveragePooling2D(),
    layers.Dense(1),
])
x = np.random.default_rng(0).normal(size=(16, 4, 4, 2)).astype("float32")
model.compile(optimizer="adam", loss="mse")
model.fit(x, x.mean(axis=(1, 2, 3))[:, None], batch_size=8, epochs=1, verbose=0)
