"""segda.demo (python/segda) against `segda demo`: the same tiny demo run
in-process from Python (the library's in-process runner, one run after
another) and by the command (its process runner, two child processes at
once) with the same options and thread counts gives the same results.json
byte for byte (but each run's wall-clock "seconds"), the progress callback
sees the runs and their iterations, and bad options raise SegdaError naming
them. Uses $SEGDA_BUILD/lib/libsegda.so and $SEGDA_BIN. Prints PASS/FAIL
lines for tests/run.sh."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
BIN = os.environ.get("SEGDA_BIN", "build/segda")
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)

import segda  # noqa: E402

failed = 0


def report(ok, label, why=""):
    global failed
    print(("PASS %s" % label) if ok else ("FAIL %s: %s" % (label, why)))
    failed += not ok


def raises(fn, *words):
    try:
        fn()
    except segda.SegdaError as e:
        missing = [w for w in words if w not in str(e)]
        return (not missing, "message %r lacks %s" % (str(e), missing))
    except Exception as e:  # noqa: BLE001 -- the wrong exception is the failure reported
        return (False, "raised %s: %s" % (type(e).__name__, e))
    return (False, "nothing raised")


def no_seconds(text):
    return re.sub(r'"seconds": [0-9.]+', '"seconds": X', text)


def run(tmp):
    out = os.path.join(tmp, "demo")
    subprocess.run([BIN, "synth", "--out", out + "/bench", "--n-sim", "8", "--n-real", "200", "--n-real-val", "4",
                    "--size", "64x32", "--crops", "4", "--crop-size", "32", "--threads", "1", "--quiet"], check=True)
    opts = {"seeds": 1, "pretrain_iters": 3, "iters": 2, "adapt_iters": 3, "jobs": 2, "threads": 1, "no_gap": True}
    args = [BIN, "demo", "--out", out, "--seeds", "1", "--pretrain-iters", "3", "--iters", "2", "--adapt-iters", "3",
            "--jobs", "2", "--threads", "1", "--no-gap"]
    cli = subprocess.run(args, capture_output=True, text=True)
    report(cli.returncode == 0, "segda demo (process runner) runs", cli.stderr[-2000:])
    with open(os.path.join(out, "results.json")) as f:
        cli_json = f.read()

    events = []
    rows = segda.demo(opts, out=out, progress=events.append)
    with open(os.path.join(out, "results.json")) as f:
        py_json = f.read()
    report(no_seconds(py_json) == no_seconds(cli_json) and len(rows) == 7,
           "segda.demo in-process writes the results.json of segda demo (seconds aside)",
           "%d rows\n--- cli\n%s\n--- python\n%s" % (len(rows), cli_json[:3000], py_json[:3000]))
    cli_miou = {r["method"]: r["miou_19"] for r in json.loads(cli_json)}
    report({r["method"]: r["miou_19"] for r in rows} == cli_miou and "fda+adabn" in cli_miou,
           "segda.demo's rows have the CLI's mIoUs", repr(rows)[:500])
    kinds = [e["kind"] for e in events]
    done = [e for e in events if e["kind"] == "done" and e["miou"] is not None]
    iters = [e for e in events if e["kind"] == "iter" and e["name"] == "fda"]
    table = "".join(e["text"] for e in events if e["kind"] == "table")
    plan = [e["text"] for e in events if e["kind"] == "note" and " runs (" in e["text"]]
    n_runs = int(plan[0].split()[1]) if plan else -1
    report(n_runs == 9 and kinds.count("start") == n_runs and len(done) == n_runs - 1 and
           all(abs(e["miou"] - cli_miou[e["name"]]) <= 5e-7 for e in done if e["name"] in cli_miou),
           "progress sees each run start and finish with its mIoU",
           "%d runs planned; %s" % (n_runs, [(e["kind"], e["name"]) for e in events if e["kind"] != "iter"]))
    report([(e["it"], e["iters"]) for e in iters] == [(1, 3), (2, 3), (3, 3)] and all("seg" in e["losses"] for e in iters),
           "progress sees every iteration of a row with its loss terms", repr(iters)[:500])
    report(table == cli.stdout, "the table event is what segda demo prints", "%r\nvs\n%r" % (table, cli.stdout))

    ok, why = raises(lambda: segda.demo(out=os.path.join(tmp, "x"), bogus=1), "unknown demo option 'bogus'")
    report(ok, "an unknown option raises SegdaError naming it", why)
    ok, why = raises(lambda: segda.demo(out=os.path.join(tmp, "x"), iters="abc"), "iters 'abc'", "integer")
    report(ok, "a bad number raises SegdaError naming the option and the value", why)
    ok, why = raises(lambda: segda.demo(out=os.path.join(tmp, "x"), methods=["fda", "no-such-method"]),
                     "unknown method 'no-such-method'")
    report(ok, "an unknown method raises SegdaError naming it", why)
    report(not os.path.exists(os.path.join(tmp, "x")), "bad options write nothing")

    stopped = []

    def stop_at_first_iteration(ev):
        stopped.append(ev["kind"])
        return ev["kind"] == "iter"
    ok, why = raises(lambda: segda.demo(opts, out=out, progress=stop_at_first_iteration), "stopped")
    report(ok and stopped.count("iter") == 1, "progress returning True stops the demo", why + repr(stopped))


def main():
    tmp = tempfile.mkdtemp(prefix="segda-pydemo-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
