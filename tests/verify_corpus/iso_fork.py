"""Isolation: the program forks a process that lives forever, then hangs."""
import os
import sys
import time

import keras

pid = os.fork()
if pid == 0:
    while True:
        time.sleep(1)
with open(os.environ["KERASLINT_TEST_PIDFILE"], "w") as f:
    f.write(str(pid))
while True:
    time.sleep(1)
