"""The verifier's parent side: which experiments to run, running them in isolated children,
verdicts for the multi-process experiments, text/JSON output and the plot.

Nothing here imports TensorFlow, PyTorch or the user's code; NumPy is imported only to
compare the runs of the multi-process experiments.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
import threading
import time
from typing import Optional

from keraslint.verify.sandbox import run_child
from keraslint.verify.catalog import EXPERIMENT_NAMES, NAMES, UNMEASURABLE
from keraslint.verify.util import fmt_num, plain, to_jsonable

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not-confirmed", "inconclusive"

# code -> experiment name (the `experiment` field); see keraslint.verify.catalog
EXPERIMENTS = dict(EXPERIMENT_NAMES)
_NAMES = NAMES


def rule_name(code: str) -> str:
    try:
        from keraslint.registry import rules_by_code

        cls = rules_by_code().get(code)
        if cls is not None:
            return cls.name
    except Exception:  # noqa: BLE001
        pass
    return _NAMES.get(code, code)


class Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"keraslint verify: {msg}", file=sys.stderr, flush=True)


def plan(target: str, rules: Optional[list]) -> list:
    """[(code, [(path, line)...])]: the experiments to run and the findings they answer."""
    from keraslint.api import check_paths

    script = target.split("::", 1)[0]
    findings = check_paths([script])
    by_code: dict = {}
    for f in findings:
        by_code.setdefault(f.code, []).append((f.path, f.line))
    if rules:
        return [(c, by_code.get(c) or [(script, None)]) for c in dict.fromkeys(rules)]
    return [(c, locs) for c, locs in sorted(by_code.items()) if c in EXPERIMENTS]


def _inconclusive(code, reason, experiment=None) -> dict:
    return {"experiment": experiment or EXPERIMENTS.get(code, "none"), "metric": None, "value": None,
            "tolerance": None, "value_fixed": None, "verdict": INCONCLUSIVE, "detail": plain(reason), "series": {}}


_FIELDS = ("experiment", "metric", "value", "tolerance", "value_fixed", "verdict", "detail")


def _backend_env(target: str) -> tuple:
    """({"KERAS_BACKEND": b} for the children, None) or ({}, reason the backend cannot run)."""
    import importlib.util

    from keraslint.verify.util import detect_backend

    backend, how = detect_backend(target.split("::", 1)[0])
    backend = backend or "tensorflow"
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax", "numpy": "numpy",
              "openvino": "openvino"}.get(backend)
    if module is None:
        return {}, f"unknown Keras backend {backend!r} ({how})"
    if importlib.util.find_spec(module) is None:
        return {}, f"the program runs on the {backend} backend ({how}), which is not installed here"
    return {"KERAS_BACKEND": backend}, None


def run_experiment(code: str, target: str, steps: int, timeout: float, progress: Progress, workdir: str,
                   env: Optional[dict] = None) -> dict:
    """Always a complete result (every field, ``seconds``): never raises."""
    start = time.monotonic()
    exp = EXPERIMENTS.get(code)
    try:
        if exp is None:
            if code in UNMEASURABLE:
                res = _inconclusive(code, f"{code} has no dynamic experiment: {UNMEASURABLE[code]}", "none")
            else:
                res = _inconclusive(code, f"{code} is not a catalog code: no experiment", "none")
        elif env is None or "KERAS_BACKEND" not in env:
            res = _inconclusive(code, (env or {}).get("_reason") or "no Keras backend to run on")
        else:
            res = _run_experiment(code, exp, target, steps, timeout, progress, workdir, env)
    except Exception as e:  # noqa: BLE001 - the answer must always come back
        res = _inconclusive(code, f"the verifier failed: {type(e).__name__}: {e}")
    if not isinstance(res, dict):
        res = _inconclusive(code, "the experiment gave no answer")
    res.setdefault("experiment", exp or "none")
    for k in _FIELDS:
        res.setdefault(k, None)
    if res["verdict"] not in (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE):
        res["verdict"] = INCONCLUSIVE
    res["detail"] = plain(res["detail"], 240) if res["verdict"] == INCONCLUSIVE else " ".join(
        str(res["detail"] or "").split()) or "no detail"
    res.setdefault("series", {})
    res["seconds"] = time.monotonic() - start
    return res


def _run_experiment(code, exp, target, steps, timeout, progress, workdir, env) -> dict:
    start = time.monotonic()
    deadline = start + timeout

    def tick(elapsed):
        progress(f"{code} {exp}: running ({elapsed:.0f} s)")

    def remaining():
        return max(0.5, deadline - time.monotonic())

    base = {"target": target, "steps": steps, "code": code, "env": {k: v for k, v in env.items() if k[0] != "_"}}
    if exp == "two-runs":
        return _two_runs(base, remaining, tick, workdir)
    if exp == "float32-vs-float64":
        return _float_runs(code, base, remaining, tick, workdir)
    if exp == "graph-mode-vs-eager":
        return _graph_mode_runs(base, remaining, tick, workdir)
    if code in _PORT_CODES and _builds_torch_module(target):
        # the program has its own PyTorch port: measure the hazard in *that* port
        r = run_child(dict(base, mode="port-rule"), remaining(), workdir, tick)
        if r.ok:
            res = dict(r.data)
            res.pop("port", None)
            res["experiment"] = "port-diff"
            return res
    if code in ("KL401", "KL603") and env.get("KERAS_BACKEND") != "torch" and _subclassed_only(target):
        # a subclassed model has no layer-by-layer reference: go straight to the torch backend
        r = run_child(dict(base, mode="torch-native", env=dict(base["env"], KERAS_BACKEND="torch")), remaining(),
                      workdir, tick)
        if r.ok:
            return r.data
    r = run_child(dict(base, mode=exp), remaining(), workdir, tick)
    if r.ok:
        res = r.data
        if res.get("retry_backend"):
            note = res.get("detail", "")
            r2 = run_child(dict(base, mode=res.get("retry_mode", exp),
                                env=dict(base["env"], KERAS_BACKEND=res["retry_backend"])), remaining(), workdir, tick)
            if r2.ok:
                res = r2.data
            else:
                res = _inconclusive(code, f"{note}; on the {res['retry_backend']} backend: {r2.reason}")
        return res
    return _inconclusive(code, r.reason)


_CACHE: dict = {}  # identical program runs shared by the experiments of one verify call (KL101-104, KL201/202)


def _key(spec: dict, i: int):
    opts = {k: v for k, v in (spec.get("options") or {}).items() if k != "save"}
    if "load" in opts:
        return None
    return json.dumps([spec["target"], spec["steps"], spec.get("env"), opts, i], sort_keys=True, default=str)


def _parallel(specs: list, remaining, tick, workdir) -> list:
    """Run the capture-run specs side by side; a run identical to one already made in this
    verify call is reused (its saved file replaces the spec's ``save``)."""
    out: list = [None] * len(specs)
    todo = []
    for i, s in enumerate(specs):
        hit = _CACHE.get(_key(s, i))
        if hit is not None:
            out[i] = hit[0]
            s["options"]["save"] = hit[1]
        else:
            todo.append((i, s))

    def go(i, s):
        out[i] = run_child(s, remaining(), workdir, tick if i == todo[0][0] else None)
        k = _key(s, i)
        if k is not None and out[i].ok:
            _CACHE[k] = (out[i], s["options"].get("save"))

    threads = [threading.Thread(target=go, args=(i, s), daemon=True) for i, s in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _load(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception:  # noqa: BLE001
        return None


def _compare_runs(a: dict, b: dict) -> tuple:
    import numpy as np

    from keraslint.verify.capture import max_abs_diff

    dw = max_abs_diff(a["w0_weights"], b["w0_weights"])
    la, lb = np.asarray(a["losses"], "float64"), np.asarray(b["losses"], "float64")
    series = [float(v) for v in np.abs(la - lb)] if la.shape == lb.shape else []
    dl = max(series) if series else float("inf")
    dp = max_abs_diff(a["preds"], b["preds"])
    return dw, dl, dp, series


def _two_runs(base: dict, remaining, tick, workdir: str) -> dict:
    tol = 1e-6
    runs = {}
    code = base["code"]
    determinism = code == "KL104"
    for arm, seed in (("as_written", None), ("fixed", 0)):
        specs = []
        for i in range(2):
            save = os.path.join(workdir, f"two-runs-{code}-{arm}-{i}.pkl")
            specs.append(dict(base, mode="capture-run",
                              options={"pre_seed": seed, "train_seed": None, "save": save,
                                       "op_determinism": determinism and arm == "fixed"}))
        results = _parallel(specs, remaining, tick, workdir)
        bad = [r for r in results if not r.ok]
        if bad:
            runs[arm] = bad[0].reason
            if arm == "as_written":
                break
            continue
        runs[arm] = [_load(s["options"]["save"]) for s in specs]
        if arm == "as_written" and max(_compare_runs(*runs[arm])[:3]) <= tol:
            break  # the runs already agree: nothing to remove
    if isinstance(runs.get("as_written"), str):
        return _inconclusive(code, runs["as_written"], "two-runs")
    dw, dl, dp, series = _compare_runs(*runs["as_written"])
    value = max(dw, dl, dp)
    steps = base["steps"]
    detail = (f"the program run twice in fresh processes: initial weights differ by max |Δ| = {fmt_num(dw)}, "
              f"losses over {steps} steps by {fmt_num(dl)}, final outputs by {fmt_num(dp)}")
    value_fixed, series_f = None, []
    if isinstance(runs.get("fixed"), list):
        fw, fl, fp, series_f = _compare_runs(*runs["fixed"])
        value_fixed = max(fw, fl, fp)
        fix = ("with tf.config.experimental.enable_op_determinism() (and the seed)" if determinism
               else "with keras.utils.set_random_seed(0) before the program")
        detail += f"; {fix}: {fmt_num(value_fixed)}"
    elif runs.get("fixed"):
        detail += f"; seeded runs failed: {runs['fixed']}"
    else:
        value_fixed, series_f = value, series
        detail += " (the runs agree as written: nothing to remove)"
    return {"experiment": "two-runs", "metric": "max_abs_diff", "value": value, "tolerance": tol,
            "value_fixed": value_fixed, "verdict": CONFIRMED if value > tol else NOT_CONFIRMED,
            "detail": detail, "series": {"as_written": series, "fixed": series_f}}


def _float_runs(code: str, base: dict, remaining, tick, workdir: str) -> dict:
    import numpy as np

    from keraslint.verify.capture import max_abs_diff

    spec_a = dict(base, mode="capture-run", options={"save": os.path.join(workdir, f"{code}-a.pkl")})
    [ra] = _parallel([spec_a], remaining, tick, workdir)
    save_a = spec_a["options"]["save"]
    if not ra.ok:
        return _inconclusive(code, ra.reason)
    requests = ra.data.get("floatx_requests") or []
    dtype_a = ra.data.get("model_dtype")
    if not requests:
        return {"experiment": "float32-vs-float64", "metric": "max_abs_diff", "value": 0.0, "tolerance": 1e-5,
                "value_fixed": 0.0, "verdict": NOT_CONFIRMED, "series": {},
                "detail": f"no set_floatx call ran before the model trained; the model trains in {dtype_a}"}
    if code == "KL201":
        opts = {"force_floatx": "float32"}
        what = f"as written (set_floatx({requests[-1]!r}), model in {dtype_a}) vs a float32 reference"
    else:
        if dtype_a == requests[-1]:
            return {"experiment": "float32-vs-float64", "metric": "max_abs_diff", "value": 0.0, "tolerance": 1e-5,
                    "value_fixed": 0.0, "verdict": NOT_CONFIRMED, "series": {},
                    "detail": f"set_floatx({requests[-1]!r}) took effect: the model trains in {dtype_a}"}
        opts = {"preset_floatx": requests[-1]}
        what = (f"as written (set_floatx({requests[-1]!r}) came too late, the model trains in {dtype_a}) vs "
                f"set_floatx moved above the model ({requests[-1]})")
    save_b = os.path.join(workdir, f"{code}-b.pkl")
    rb = run_child(dict(base, mode="capture-run", options=dict(opts, load=save_a, save=save_b, repeats=2)),
                   remaining(), workdir, tick)
    if not rb.ok:
        return _inconclusive(code, f"reference run failed: {rb.reason}")
    a, b = _load(save_a), _load(save_b)
    la, lb = np.asarray(a["losses"], "float64"), np.asarray(b["losses"], "float64")
    lr = np.asarray(rb.data.get("losses_repeat") or b["losses"], "float64")
    series = [float(v) for v in np.abs(la - lb)]
    series_f = [float(v) for v in np.abs(lr - lb)]
    value = max(max(series), max_abs_diff(a["preds"], b["preds"]))
    value_fixed = max(max(series_f), max_abs_diff(b["preds_repeat"] or b["preds"], b["preds"]))
    scale = max([1.0] + [float(np.max(np.abs(np.asarray(p, "float64")))) for p in b["preds"] if np.size(p)])
    tol = 1e-5 * scale
    detail = (f"{what}, same initial weights and batches, {base['steps']} steps: max |Δ| of losses and outputs = "
              f"{fmt_num(value)} (last loss {fmt_num(la[-1])} vs {fmt_num(lb[-1])}); hazard removed: the same "
              f"program twice gives {fmt_num(value_fixed)}")
    return {"experiment": "float32-vs-float64", "metric": "max_abs_diff", "value": value, "tolerance": tol,
            "value_fixed": value_fixed, "verdict": CONFIRMED if value > tol else NOT_CONFIRMED,
            "detail": detail, "series": {"as_written": series, "fixed": series_f}}


_PORT_CODES = ("KL601", "KL602", "KL604", "KL605", "KL606", "KL607")


def _builds_torch_module(target: str) -> bool:
    """The script defines or builds a torch.nn.Module (static look, standard library only)."""
    import ast

    try:
        with open(target.split("::", 1)[0], "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for b in node.bases:
                if (isinstance(b, ast.Attribute) and b.attr == "Module") or (isinstance(b, ast.Name) and b.id == "Module"):
                    return True
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Sequential":
            v = node.func.value
            if isinstance(v, ast.Name) and v.id == "nn" or isinstance(v, ast.Attribute) and v.attr == "nn":
                return True
    return False


def _subclassed_only(target: str) -> bool:
    """The script defines a keras.Model subclass with its own call and builds no functional or
    Sequential model (static look, standard library only)."""
    import ast

    try:
        with open(target.split("::", 1)[0], "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return False
    subclass = functional = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
            if any(b == "Model" for b in bases) and any(
                    isinstance(n, ast.FunctionDef) and n.name == "call" for n in node.body):
                subclass = True
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name == "Sequential" or (name in ("Model", "Functional") and len(node.args) + len(node.keywords) >= 2):
                functional = True
    return subclass and not functional


def _graph_mode_runs(base: dict, remaining, tick, workdir: str) -> dict:
    """KL205: the program as written (TF1 graph mode switched on) vs with the switch made a no-op."""
    import numpy as np

    code = base["code"]
    save_b = os.path.join(workdir, f"{code}-eager.pkl")
    rb = run_child(dict(base, mode="capture-run", options={"save": save_b, "no_tf1": True, "report_errors": True,
                                                           "repeats": 2}), remaining(), workdir, tick)
    if not rb.ok or rb.data.get("train_error"):
        return _inconclusive(code, f"the program fails even in eager mode: {rb.reason or rb.data.get('train_error')}")
    ra = run_child(dict(base, mode="capture-run", options={"load": save_b, "report_errors": True}),
                   remaining(), workdir, tick)
    lb = np.asarray(rb.data["losses"], "float64")
    value_fixed = float(np.max(np.abs(lb - np.asarray(rb.data.get("losses_repeat") or lb, "float64"))))
    scale = max([1.0] + [abs(float(v)) for v in lb])
    tol = 1e-5 * scale
    a_err = ra.reason if not ra.ok else ra.data.get("train_error")
    graph = ra.ok and ra.data.get("eager") is False
    if a_err:
        if "timed out" in a_err:
            return _inconclusive(code, f"as written: {a_err}")
        return {"experiment": "graph-mode-vs-eager", "metric": "max_abs_diff", "value": None, "tolerance": tol,
                "value_fixed": value_fixed, "verdict": CONFIRMED,
                "detail": f"as written (TF1 graph mode{' on' if graph or not ra.ok else ''}) training fails: {plain(a_err)}; "
                          f"with disable_eager_execution made a no-op, {base['steps']} steps run (last loss "
                          f"{fmt_num(lb[-1])}; the same run repeated differs by {fmt_num(value_fixed)})",
                "series": {"fixed": [0.0] * len(lb)}}
    la = np.asarray(ra.data["losses"], "float64")
    series = [float(v) for v in np.abs(la - lb)] if la.shape == lb.shape else []
    value = max(series) if series else float("inf")
    verdict = CONFIRMED if value > tol else NOT_CONFIRMED
    mode = "graph mode" if graph else "eager mode (no TF1 switch ran before training)"
    return {"experiment": "graph-mode-vs-eager", "metric": "max_abs_diff", "value": value, "tolerance": tol,
            "value_fixed": value_fixed, "verdict": verdict,
            "detail": f"as written the program trains in {mode}; {base['steps']} steps from the same weights and "
                      f"batches vs eager: max |Δ loss| = {fmt_num(value)}",
            "series": {"as_written": series}}


_MULTI_PROCESS = ("two-runs", "float32-vs-float64", "graph-mode-vs-eager")


def verify_many(items: list, timeout: float = 120.0, progress: Optional[Progress] = None) -> list:
    """Run several (target, code, steps) experiments; the single-process ones share one child per
    Keras backend (TensorFlow starts once), the others run as ``verify`` runs them. Returns one
    complete result per item, in order, with ``seconds``. For test suites and batch checks: a
    crash or hang in one program makes the rest of its batch inconclusive."""
    progress = progress or Progress(False)
    _CACHE.clear()
    out: list = [None] * len(items)
    workdir = tempfile.mkdtemp(prefix="keraslint-verify-")
    groups: dict = {}
    try:
        for i, (target, code, steps) in enumerate(items):
            exp = EXPERIMENTS.get(code)
            env, reason = _backend_env(target)
            if exp is None or reason or exp in _MULTI_PROCESS or (code in ("KL401", "KL603") and
                                                                 _subclassed_only(target)) or (
                    code in _PORT_CODES and _builds_torch_module(target)):
                out[i] = run_experiment(code, target, steps, timeout, progress, workdir,
                                        {"_reason": reason} if reason else env)
                continue
            groups.setdefault(env["KERAS_BACKEND"], []).append(i)
        for backend, idx in groups.items():
            start = time.monotonic()
            specs = [{"target": items[i][0], "steps": items[i][2], "code": items[i][1],
                      "mode": EXPERIMENTS[items[i][1]]} for i in idx]
            r = run_child({"mode": "batch", "items": specs, "target": items[idx[0]][0], "steps": 1, "code": "batch",
                           "env": {"KERAS_BACKEND": backend}}, timeout * len(idx), workdir)
            answers = r.data.get("results") if r.ok else None
            per = (time.monotonic() - start) / max(1, len(idx))
            for k, i in enumerate(idx):
                code = items[i][1]
                a = answers[k] if answers and k < len(answers) else {"error": r.reason or "no answer"}
                if a.get("error"):
                    res = _inconclusive(code, a["error"])
                elif a.get("retry_backend"):
                    res = run_experiment(code, items[i][0], items[i][2], timeout, progress, workdir,
                                         {"KERAS_BACKEND": backend})
                else:
                    res = dict(a)
                res.setdefault("experiment", EXPERIMENTS.get(code, "none"))
                for key in _FIELDS:
                    res.setdefault(key, None)
                res["detail"] = plain(res["detail"]) if res["verdict"] == INCONCLUSIVE else (res["detail"] or "")
                res.setdefault("seconds", a.get("seconds", per) if isinstance(a, dict) else per)
                out[i] = res
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------


def verify(target: str, rules: Optional[list], steps: int, timeout: float, progress: Progress,
           port: Optional[str] = None) -> dict:
    script = target.split("::", 1)[0]
    _CACHE.clear()
    try:
        todo = [] if (port is not None and not rules) else plan(target, rules)
    except Exception as e:  # noqa: BLE001 - the static check failed: still answer the --rule codes
        progress(f"could not check {script}: {type(e).__name__}: {e}")
        todo = [(c, [(script, None)]) for c in dict.fromkeys(rules or [])]
    env, reason = _backend_env(target)
    if reason:
        env = {"_reason": reason}
    results = []
    port_report = None
    workdir = tempfile.mkdtemp(prefix="keraslint-verify-")
    try:
        for code, locs in todo:
            exp = EXPERIMENTS.get(code, "none")
            progress(f"{code} {exp}: started")
            res = run_experiment(code, target, steps, timeout, progress, workdir, env)
            progress(f"{code} {exp}: {res['verdict']} in {res['seconds']:.1f} s")
            for path, line in locs:
                results.append(_result(code, path or script, line, res))
        if port is not None:
            progress("port-diff: started")
            port_report, res = run_port(target, port, timeout, progress, workdir, env)
            progress(f"port-diff: {res['verdict']} in {res['seconds']:.1f} s")
            if res.get("code") or res["verdict"] == INCONCLUSIVE:
                results.append(_result(res.get("code") or "port", script, None, res))
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"confirmed": sum(r["verdict"] == CONFIRMED for r in results),
               "not_confirmed": sum(r["verdict"] == NOT_CONFIRMED for r in results),
               "inconclusive": sum(r["verdict"] == INCONCLUSIVE for r in results)}
    out = {"target": target, "results": results, "summary": summary}
    if port_report is not None:
        out["port"] = port_report
        out["_port_series"] = res.get("series") or {}
    return out


def _result(code, path, line, res) -> dict:
    return {
        "code": code, "rule": rule_name(code) if code != "port" else "port-diff", "path": path, "line": line,
        "verdict": res["verdict"], "experiment": res.get("experiment") or EXPERIMENTS.get(code, "none"),
        "metric": res.get("metric"), "value": res.get("value"), "tolerance": res.get("tolerance"),
        "value_fixed": res.get("value_fixed"), "detail": res.get("detail") or "",
        "_series": res.get("series") or {}, "_seconds": res.get("seconds", 0.0),
    }


PORT_KEYS = ("keras", "torch", "layers", "first_divergent", "code", "max_abs_diff_fixed", "detail")


def run_port(target: str, names: str, timeout: float, progress: Progress, workdir: str, env: dict) -> tuple:
    """(the "port" object, a result dict) for ``--port [KERAS,TORCH]``; never raises."""
    start = time.monotonic()
    keras_name, _, torch_name = (names or "").partition(",")
    empty = {"keras": keras_name.strip() or None, "torch": torch_name.strip() or None, "layers": [],
             "first_divergent": None, "code": None, "max_abs_diff_fixed": None, "detail": ""}
    try:
        if "KERAS_BACKEND" not in env:
            raise RuntimeError(env.get("_reason") or "no Keras backend")

        def tick(elapsed):
            progress(f"port-diff: running ({elapsed:.0f} s)")
        r = run_child({"target": target, "steps": 1, "code": "port", "mode": "port-diff",
                       "env": {k: v for k, v in env.items() if k[0] != "_"},
                       "options": {"keras": empty["keras"], "torch": empty["torch"]}}, timeout, workdir, tick)
        if not r.ok:
            raise RuntimeError(r.reason)
        data = r.data
        port = {k: data.get("port", {}).get(k, empty[k]) for k in PORT_KEYS}
        res = {k: data.get(k) for k in _FIELDS}
        res["code"] = port["code"]
        res["series"] = data.get("series") or {}
    except Exception as e:  # noqa: BLE001
        reason = plain(str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}")
        port = dict(empty, detail=reason)
        res = _inconclusive("port", reason, "port-diff")
    res["detail"] = plain(res.get("detail"), 400) if res.get("verdict") == INCONCLUSIVE else (res.get("detail") or "")
    port["detail"] = " ".join(str(port.get("detail") or "").split())
    res["experiment"] = "port-diff"
    res["seconds"] = time.monotonic() - start
    return port, res


def public(report: dict) -> dict:
    out = {"target": report["target"],
           "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in report["results"]],
           "summary": report["summary"]}
    if "port" in report:
        out["port"] = report["port"]
    return to_jsonable(out)


def port_text(port: dict) -> str:
    lines = [f"port: Keras {port.get('keras')} vs PyTorch {port.get('torch')}"]
    rows = port.get("layers") or []
    if rows:
        w1 = max([len("keras layer")] + [len(str(r["keras_layer"])) for r in rows])
        w2 = max([len("torch module")] + [len(str(r["torch_module"])) for r in rows])
        lines.append(f"  {'#':>3}  {'keras layer':<{w1}}  {'torch module':<{w2}}  max |Δ|")
        for r in rows:
            mark = "  <- first divergence" if r["index"] == port.get("first_divergent") else ""
            lines.append(f"  {r['index']:>3}  {str(r['keras_layer']):<{w1}}  {str(r['torch_module']):<{w2}}  "
                         f"{fmt_num(r['max_abs_diff'])}{mark}")
    if port.get("first_divergent") is None:
        lines.append("  no layer diverges" if rows else "  no layers compared")
    else:
        lines.append(f"  first divergent layer: {port['first_divergent']}; hazard: {port.get('code') or 'none known'}"
                     + (f"; max |Δ| with it removed: {fmt_num(port.get('max_abs_diff_fixed'))}"
                        if port.get("max_abs_diff_fixed") is not None else ""))
    if port.get("detail"):
        lines.append(f"  {port['detail']}")
    return "\n".join(lines) + "\n"


def text(report: dict) -> str:
    lines = []
    for r in report["results"]:
        where = f"{r['path']}:{r['line']}" if r["line"] is not None else r["path"]
        head = f"{where}: {r['code']} {r['rule']}: {r['verdict']}"
        if r["value"] is not None or r["value_fixed"] is not None:
            head += (f" ({r['experiment']}: {r['metric']} = {fmt_num(r['value'])}, tolerance {fmt_num(r['tolerance'])}"
                     f", hazard removed {fmt_num(r['value_fixed'])})")
        else:
            head += f" ({r['experiment']})"
        lines.append(head)
        if not ("port" in report and r.get("experiment") == "port-diff"):  # the port block says it
            lines.append(f"    {r['detail']}")
    s = report["summary"]
    if "port" in report:
        lines.append(port_text(report["port"]).rstrip("\n"))
    if not report["results"] and "port" not in report:
        lines.append("no verifiable finding (use --rule CODE to run an experiment anyway)")
    lines.append(f"{s['confirmed']} confirmed, {s['not_confirmed']} not confirmed, {s['inconclusive']} inconclusive")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in (report["results"] or []) if r.get("experiment") != "port-diff"]
    has_port = "port" in report
    n = max(1, len(results) + has_port)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.8 * n), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        _panel(ax, r)
    if has_port:
        _port_panel(axes[len(results), 0], report["port"], report.get("_port_series") or {})
    if not results and not has_port:
        axes[0, 0].text(0.5, 0.5, "no results", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _port_panel(ax, port: dict, series: dict) -> None:
    rows = port.get("layers") or []
    if not rows:
        ax.text(0.5, 0.5, f"port: {port.get('detail', '')[:90]}", ha="center", va="center", transform=ax.transAxes,
                fontsize=8)
        return
    xs = [r["index"] for r in rows]
    floor = 1e-12
    ys = [max(floor, r["max_abs_diff"]) if r["max_abs_diff"] is not None else float("nan") for r in rows]
    ax.plot(xs, ys, "-o", markersize=4, label="as written")
    fixed = series.get("fixed") or []
    if fixed and len(fixed) == len(xs):
        ax.plot(xs, [max(floor, v) if v is not None else float("nan") for v in fixed], "-s", markersize=3,
                label=f"{port.get('code')} removed")
    if port.get("first_divergent") is not None:
        ax.axvline(port["first_divergent"], color="red", linestyle=":", linewidth=1, label="first divergence")
    ax.axhline(1e-5, color="grey", linestyle="--", linewidth=1, label="tolerance 1e-05")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['index']}:{r['keras_layer']}" for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("max |Δ| of the layer output", fontsize=8)
    ax.set_title(f"port: Keras {port.get('keras')} vs PyTorch {port.get('torch')} — "
                 f"first divergent {port.get('first_divergent')}, hazard {port.get('code')}", fontsize=9)
    ax.legend(fontsize=7)


def _panel(ax, r: dict) -> None:
    s = r.get("_series") or {}
    drawn = False
    for key, label, style in (("as_written", "as written", "-o"), ("fixed", "hazard removed", "-s"),
                              ("reference", "eager reference", ":")):
        ys = [v for v in (s.get(key) or [])]
        if ys and any(v is not None for v in ys):
            ax.plot(range(1, len(ys) + 1), [float("nan") if v is None else v for v in ys], style,
                    label=label, markersize=3)
            drawn = True
    if r.get("tolerance") is not None and "ylabel" not in s:
        ax.axhline(r["tolerance"], color="grey", linestyle="--", linewidth=1, label=f"tolerance {fmt_num(r['tolerance'])}")
    if not drawn:
        ax.text(0.5, 0.5, f"{r['verdict']}: {r['detail'][:90]}", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, wrap=True)
    ax.set_title(f"{r['code']} {r['rule']} — {r['verdict']} ({r['experiment']})", fontsize=9)
    ax.set_xlabel(s.get("x", "step"))
    ax.set_ylabel(s.get("ylabel") or r.get("metric") or "", fontsize=8)
    try:
        vals = [v for k in ("as_written", "fixed") for v in (s.get(k) or []) if v]
        if vals and max(vals) / max(min(v for v in vals if v > 0), 1e-300) > 1e3:
            ax.set_yscale("symlog", linthresh=max(min(v for v in vals if v > 0), 1e-12))
            ax.set_ylim(bottom=0)
    except ValueError:
        pass
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def run_cli(target: str, rules: Optional[list] = None, steps: int = 20, timeout: float = 120.0, fmt: str = "text",
            plot_path: Optional[str] = None, port: Optional[str] = None) -> int:
    progress = Progress(fmt != "json")
    try:
        report = verify(target, rules, steps, timeout, progress, port=port)
    except Exception as e:  # noqa: BLE001
        print(f"keraslint: error: verify failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if fmt == "json":
        sys.stdout.write(json.dumps(public(report), indent=2) + "\n")
    else:
        sys.stdout.write(text(report))
    sys.stdout.flush()
    if plot_path:
        try:
            plot(report, plot_path)
        except Exception as e:  # noqa: BLE001
            print(f"keraslint: error: could not draw {plot_path}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    diverged = "port" in report and report["port"].get("first_divergent") is not None
    return 1 if report["summary"]["confirmed"] or diverged else 0
