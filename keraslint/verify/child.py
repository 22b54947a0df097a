"""Entry point of a verifier child process: ``python -m keraslint.verify.child SPEC.json``.

Limits are set before anything heavy is imported; the answer is one JSON object written to
``spec["out"]`` (``{"error": reason}`` when the experiment could not run). This is the only
place where the user's code, TensorFlow and PyTorch are ever loaded.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _limits(spec: dict) -> None:
    try:
        import resource

        mem = int(spec.get("memory_mb", 0)) * 2**20
        if mem > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        fsz = int(spec.get("file_mb", 0)) * 2**20
        if fsz > 0:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsz, fsz))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX
        pass


def _write(path: str, obj: dict) -> None:
    from keraslint.verify.util import to_jsonable

    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(obj), f)
    os.replace(tmp, path)


def main(argv: list) -> int:
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    _limits(spec)
    out = spec["out"]
    try:
        from keraslint.verify import experiments

        result = experiments.run(spec)
    except MemoryError:
        result = {"error": "ran out of memory (address-space limit of the verifier)"}
    except BaseException as e:  # noqa: BLE001 - the answer must always be written
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        result = {"error": f"internal error in the verifier: {type(e).__name__}: {str(e)[:300]}",
                  "traceback": "".join(tb)[-2000:]}
    _write(out, result)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: TF/torch atexit hooks and user threads can hang or crash it.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
