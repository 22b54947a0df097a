"""Isolation: the program floods stdout and stderr."""
import sys

import keras

line = "x" * 1000 + "\n"
while True:
    sys.stdout.write(line)
    sys.stderr.write(line)
