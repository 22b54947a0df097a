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
from keraslint.verify.util import fmt_num, to_jsonable

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not-confirmed", "inconclusive"

# code -> experiment name (the `experiment` field) ; the child mode that runs it
EXPERIMENTS = {
    "KL101": "two-runs", "KL102": "two-runs", "KL103": "two-runs", "KL104": "two-runs",
    "KL201": "float32-vs-float64", "KL202": "float32-vs-float64",
    "KL301": "eager-vs-compiled", "KL302": "eager-vs-compiled", "KL303": "eager-vs-compiled",
    "KL305": "eager-vs-compiled",
    "KL304": "repeated-calls",
    "KL401": "torch-reference", "KL601": "torch-reference", "KL602": "torch-reference",
    "KL603": "torch-reference",
    "KL404": "logits-consistency",
    "KL501": "batched-vs-unbatched",
}

# names from the catalog, used when a rule module is not (yet) installed
_NAMES = {
    "KL101": "unseeded-training", "KL102": "partial-seeding", "KL103": "seed-after-build",
    "KL104": "op-determinism-off", "KL201": "global-floatx", "KL202": "floatx-after-build",
    "KL301": "numpy-in-graph", "KL302": "tensor-to-python-in-graph", "KL303": "python-branch-on-tensor",
    "KL304": "trace-time-side-effect", "KL305": "variable-in-call", "KL401": "implicit-optimizer-defaults",
    "KL404": "logits-mismatch", "KL501": "unbatched-dataset", "KL601": "batchnorm-defaults-differ",
    "KL602": "layernorm-epsilon-differs", "KL603": "optimizer-defaults-differ",
}


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
            "tolerance": None, "value_fixed": None, "verdict": INCONCLUSIVE, "detail": reason, "series": {}}


def run_experiment(code: str, target: str, steps: int, timeout: float, progress: Progress, workdir: str) -> dict:
    exp = EXPERIMENTS.get(code)
    if exp is None:
        return _inconclusive(code, f"{code} has no dynamic experiment (only static evidence)", "none")
    start = time.monotonic()
    deadline = start + timeout

    def tick(elapsed):
        progress(f"{code} {exp}: running ({elapsed:.0f} s)")

    def remaining():
        return max(0.5, deadline - time.monotonic())

    base = {"target": target, "steps": steps, "code": code}
    if exp == "two-runs":
        res = _two_runs(base, remaining, tick, workdir)
    elif exp == "float32-vs-float64":
        res = _float_runs(code, base, remaining, tick, workdir)
    else:
        r = run_child(dict(base, mode=exp), remaining(), workdir, tick)
        res = r.data if r.ok else _inconclusive(code, r.reason)
    res.setdefault("experiment", exp)
    res["seconds"] = time.monotonic() - start
    return res


def _parallel(specs: list, remaining, tick, workdir) -> list:
    out: list = [None] * len(specs)

    def go(i, s):
        out[i] = run_child(s, remaining(), workdir, tick if i == 0 else None)

    threads = [threading.Thread(target=go, args=(i, s), daemon=True) for i, s in enumerate(specs)]
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
    for arm, seed in (("as_written", None), ("fixed", 0)):
        specs = []
        for i in range(2):
            save = os.path.join(workdir, f"two-runs-{arm}-{i}.pkl")
            specs.append(dict(base, mode="capture-run",
                              options={"pre_seed": seed, "train_seed": None, "save": save}))
        results = _parallel(specs, remaining, tick, workdir)
        bad = [r for r in results if not r.ok]
        if bad:
            runs[arm] = bad[0].reason
            continue
        runs[arm] = [_load(s["options"]["save"]) for s in specs]
    if isinstance(runs.get("as_written"), str):
        return _inconclusive("KL101", runs["as_written"], "two-runs")
    dw, dl, dp, series = _compare_runs(*runs["as_written"])
    value = max(dw, dl, dp)
    steps = base["steps"]
    detail = (f"the program run twice in fresh processes: initial weights differ by max |Δ| = {fmt_num(dw)}, "
              f"losses over {steps} steps by {fmt_num(dl)}, final outputs by {fmt_num(dp)}")
    value_fixed, series_f = None, []
    if isinstance(runs.get("fixed"), list):
        fw, fl, fp, series_f = _compare_runs(*runs["fixed"])
        value_fixed = max(fw, fl, fp)
        detail += f"; with keras.utils.set_random_seed(0) before the program: {fmt_num(value_fixed)}"
    elif runs.get("fixed"):
        detail += f"; seeded runs failed: {runs['fixed']}"
    return {"experiment": "two-runs", "metric": "max_abs_diff", "value": value, "tolerance": tol,
            "value_fixed": value_fixed, "verdict": CONFIRMED if value > tol else NOT_CONFIRMED,
            "detail": detail, "series": {"as_written": series, "fixed": series_f}}


def _float_runs(code: str, base: dict, remaining, tick, workdir: str) -> dict:
    import numpy as np

    from keraslint.verify.capture import max_abs_diff

    save_a = os.path.join(workdir, f"{code}-a.pkl")
    ra = run_child(dict(base, mode="capture-run", options={"save": save_a}), remaining(), workdir, tick)
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


# ---------------------------------------------------------------------------


def verify(target: str, rules: Optional[list], steps: int, timeout: float, progress: Progress) -> dict:
    script = target.split("::", 1)[0]
    todo = plan(target, rules)
    results = []
    workdir = tempfile.mkdtemp(prefix="keraslint-verify-")
    try:
        for code, locs in todo:
            exp = EXPERIMENTS.get(code, "none")
            progress(f"{code} {exp}: started")
            res = run_experiment(code, target, steps, timeout, progress, workdir)
            progress(f"{code} {exp}: {res['verdict']} in {res['seconds']:.1f} s")
            for path, line in locs:
                results.append({
                    "code": code, "rule": rule_name(code), "path": path or script, "line": line,
                    "verdict": res["verdict"], "experiment": res.get("experiment", exp),
                    "metric": res.get("metric"), "value": res.get("value"), "tolerance": res.get("tolerance"),
                    "value_fixed": res.get("value_fixed"), "detail": res.get("detail", ""),
                    "_series": res.get("series") or {}, "_seconds": res["seconds"],
                })
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"confirmed": sum(r["verdict"] == CONFIRMED for r in results),
               "not_confirmed": sum(r["verdict"] == NOT_CONFIRMED for r in results),
               "inconclusive": sum(r["verdict"] == INCONCLUSIVE for r in results)}
    return {"target": target, "results": results, "summary": summary}


def public(report: dict) -> dict:
    return to_jsonable({"target": report["target"],
                        "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in report["results"]],
                        "summary": report["summary"]})


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
        lines.append(f"    {r['detail']}")
    s = report["summary"]
    if not report["results"]:
        lines.append("no verifiable finding (use --rule CODE to run an experiment anyway)")
    lines.append(f"{s['confirmed']} confirmed, {s['not_confirmed']} not confirmed, {s['inconclusive']} inconclusive")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"] or []
    n = max(1, len(results))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.8 * n), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
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
    if not results:
        axes[0, 0].text(0.5, 0.5, "no results", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_cli(target: str, rules: Optional[list] = None, steps: int = 20, timeout: float = 120.0, fmt: str = "text",
            plot_path: Optional[str] = None) -> int:
    progress = Progress(fmt != "json")
    try:
        report = verify(target, rules, steps, timeout, progress)
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
    return 1 if report["summary"]["confirmed"] else 0
