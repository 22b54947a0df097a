"""Isolation: the program crashes in native code."""
import ctypes

import keras

ctypes.string_at(0)
