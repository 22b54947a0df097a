"""KL605 clean twin, CNN + BatchNormalization: on 7x7 inputs TensorFlow's "same" pads (1, 1),
exactly what a PyTorch port with padding=1 does: the two agree."""
import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((7, 7, 3)),
    layers.Conv2D(8, 3, strides=2, padding="same"),
    layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
    layers.ReLU(),
    layers.GlobalAveragePooling2D(),
    layers.Dense(2),
])
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 7, 7, 3)).astype("float32")
y = x.mean(axis=(1, 2))[:, :2]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
