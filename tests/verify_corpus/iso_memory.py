"""Isolation: the program allocates without bound."""
import keras

chunks = []
while True:
    chunks.append(bytearray(512 * 2**20))
