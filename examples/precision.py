"""Mixed precision and float64 experiments."""
import keras
from keras import layers

keras.utils.set_random_seed(1)
keras.mixed_precision.set_global_policy("mixed_float16")

model = keras.Sequential([
    keras.Input((32,)),
    layers.Dense(64, activation="relu"),
    layers.Dense(10, activation="softmax"),
])

keras.config.set_floatx("float64")
reference = keras.Sequential([keras.Input((32,)), layers.Dense(10)])
