"""Isolation: the program leaves with os._exit before fit."""
import os

import keras

os._exit(0)
