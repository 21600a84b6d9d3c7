"""TensorBoard event files of a training run (RUNDIR/tb/), read back by a
decoder written here from the formats' specifications, independent of the C
writer: TFRecord frames (u64 length, masked CRC-32C of it, data, masked
CRC-32C of the data; the CRC computed bit by bit here), and the Event /
Summary / Value / Image protobufs parsed field by field from the wire format.
Checks the tags, steps and values against the run's log.jsonl, the image
strips' PNGs, and that a corrupted byte is caught. When TensorBoard itself
can be run (SEGDA_TB_PYTHON, /tmp/tbvenv/bin/python, or this python), its
reader must see the same scalars; otherwise a SKIP line says so.
Prints PASS/FAIL/SKIP lines."""
import atexit
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_build = os.environ.get("SEGDA_BUILD", "build")
SEGDA = os.path.join(_root if not os.path.isabs(_build) else "", _build, "segda")
failed = 0


def report(ok, name, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)))
    failed += not ok


def crc32c(data):
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(buf):
    """The TFRecord payloads of buf; raises ValueError on a bad frame or CRC."""
    out, i = [], 0
    while i < len(buf):
        if i + 12 > len(buf):
            raise ValueError("truncated header at %d" % i)
        n, lc = struct.unpack_from("<QI", buf, i)
        if masked(crc32c(buf[i:i + 8])) != lc:
            raise ValueError("length CRC at %d" % i)
        data = buf[i + 12:i + 12 + n]
        if len(data) != n or i + 16 + n > len(buf):
            raise ValueError("truncated record at %d" % i)
        (dc,) = struct.unpack_from("<I", buf, i + 12 + n)
        if masked(crc32c(data)) != dc:
            raise ValueError("data CRC at %d" % i)
        out.append(data)
        i += 16 + n
    return out


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a protobuf message."""
    out, i = [], 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        out.append((f, wt, v))
    return out


def decode_event(b):
    ev = {"values": []}
    for f, wt, v in fields(b):
        if f == 1 and wt == 1:
            ev["wall_time"] = struct.unpack("<d", v)[0]
        elif f == 2 and wt == 0:
            ev["step"] = v
        elif f == 3 and wt == 2:
            ev["file_version"] = v.decode()
        elif f == 5 and wt == 2:
            for f2, _, val in fields(v):
                if f2 != 1:
                    continue
                d = {}
                for f3, wt3, x in fields(val):
                    if f3 == 1:
                        d["tag"] = x.decode()
                    elif f3 == 2 and wt3 == 5:
                        d["simple_value"] = struct.unpack("<f", x)[0]
                    elif f3 == 4:
                        im = {}
                        for f4, _, y in fields(x):
                            im[{1: "height", 2: "width", 3: "colorspace", 4: "png"}.get(f4, f4)] = y
                        d["image"] = im
                ev["values"].append(d)
        elif f == 6:
            ev["session_log"] = fields(v)
    return ev


def png_size(png):
    """Width and height from the IHDR chunk, after checking every chunk's CRC."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    i, size = 8, None
    while i < len(png):
        n, typ = struct.unpack_from(">I4s", png, i)
        body = png[i + 8:i + 8 + n]
        if zlib.crc32(typ + body) != struct.unpack_from(">I", png, i + 8 + n)[0]:
            raise ValueError("chunk CRC")
        if typ == b"IHDR":
            size = struct.unpack(">II", body[:8])
        i += 12 + n
    return size


def main():
    report(crc32c(b"123456789") == 0xE3069283, "the test's CRC-32C gives the standard check value")
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    run = lambda *a: subprocess.run([SEGDA] + list(a), cwd=tmp, capture_output=True, text=True)
    r = run("synth", "--out", "b", "--n-sim", "2", "--n-real", "2", "--n-real-val", "2", "--size", "64x32",
            "--crops", "2", "--crop-size", "32")
    r = r.returncode == 0 and run("train", "--method", "advent", "--source", "gta5:b/sim", "--target",
                                  "cityscapes:b/real", "--model", "deeplab-mini", "--crop", "64x32", "--out", "r",
                                  "--iters", "4", "--eval-every", "2", "--tb-images-every", "2", "--workers", "0")
    report(bool(r) and r.returncode == 0, "a 4-iteration ADVENT run", r.stderr[-500:] if r else "synth failed")
    files = glob.glob(os.path.join(tmp, "r", "tb", "events.out.tfevents.*"))
    report(len(files) == 1, "one event file in RUNDIR/tb", files)
    if len(files) != 1:
        return
    buf = open(files[0], "rb").read()
    try:
        evs = [decode_event(b) for b in records(buf)]
        report(True, "every record's length and data CRC-32C check")
    except ValueError as e:
        report(False, "every record's length and data CRC-32C check", e)
        return
    report(evs[0].get("file_version") == "brain.Event:2" and not evs[0]["values"],
           "the first record is file_version brain.Event:2", evs[0])
    scal, imgs = {}, {}
    for e in evs[1:]:
        for v in e["values"]:
            if "simple_value" in v:
                scal.setdefault(v["tag"], []).append((e["step"], v["simple_value"]))
            if "image" in v:
                imgs.setdefault(v["tag"], []).append((e["step"], v["image"]))
    log = [json.loads(l) for l in open(os.path.join(tmp, "r", "log.jsonl"))]
    its = [l for l in log if "terms" in l]
    evals = [l for l in log if "eval" in l]
    ok, bad = True, []
    for l in its:
        want = dict(("loss/" + k, v) for k, v in l["terms"].items())
        want["train/lr"] = l["lr"]
        for tag, v in want.items():
            got = [x for s, x in scal.get(tag, []) if s == l["it"]]
            if len(got) != 1 or abs(got[0] - v) > 1e-5 * max(1.0, abs(v)):
                ok = False
                bad.append((tag, l["it"], got, v))
    report(ok and len(its) == 4, "every loss term and the lr at steps 1..4 equal log.jsonl's", bad[:3])
    ok = len(evals) == 2
    for l in evals:
        got = [x for s, x in scal.get("val/mIoU-19", []) if s == l["it"]]
        ok = ok and len(got) == 1 and abs(got[0] - 100 * l["eval"]["miou_19"]) < 1e-3
        road = [x for s, x in scal.get("val_class_iou/road", []) if s == l["it"]]
        ok = ok and len(road) == 1 and abs(road[0] - 100 * l["eval"]["class_iou"]["road"]) < 1e-3
    report(ok, "val/mIoU-19 and val_class_iou/road at the evaluations (steps 2, 4) equal log.jsonl's x100",
           (scal.get("val/mIoU-19"), evals))
    ok = True
    for tag, cols in (("images/source", 3), ("images/target", 4)):  # ADVENT: the target strip has its entropy map
        steps = [s for s, _ in imgs.get(tag, [])]
        ok = ok and steps == [2, 4]
        for _, im in imgs.get(tag, []):
            w, h = png_size(im["png"])
            ok = ok and (w, h) == (im["width"], im["height"]) and im["colorspace"] == 3
            ok = ok and w == cols * 64 + (cols - 1) * 4 and h == 12 + 32
    report(ok, "image strips at steps 2 and 4: PNG size = the Image fields; source 3 columns, target 4 (entropy)",
           {k: [(s, i["width"], i["height"]) for s, i in v] for k, v in imgs.items()})
    bad = bytearray(buf)
    bad[len(bad) // 2] ^= 0x01
    try:
        records(bytes(bad))
        report(False, "a flipped byte is caught by the CRCs")
    except ValueError:
        report(True, "a flipped byte is caught by the CRCs")

    # a resumed run: a second file opening with SessionLog START at its first step
    r = run("train", "--method", "source-only", "--source", "gta5:b/sim", "--target", "cityscapes:b/real", "--model",
            "deeplab-mini", "--crop", "64x32", "--out", "s", "--iters", "4", "--stop-after", "2", "--workers", "0")
    if r.returncode == 0:
        time.sleep(1.1)  # (a new file name: the names carry the second)
        r = run("train", "--method", "source-only", "--source", "gta5:b/sim", "--target", "cityscapes:b/real",
                "--model", "deeplab-mini", "--crop", "64x32", "--out", "s", "--iters", "4", "--resume", "--workers", "0")
    files = sorted(glob.glob(os.path.join(tmp, "s", "tb", "events.out.tfevents.*")))
    ok = r.returncode == 0 and len(files) == 2
    if ok:
        second = [decode_event(b) for b in records(open(files[1], "rb").read())]
        ok = second[1].get("session_log") == [(1, 0, 1)] and second[1]["step"] == 3 and \
            [e["step"] for e in second[2:] if e["values"] and e["values"][0]["tag"] == "loss/seg"] == [3, 4]
    report(ok, "a resumed run writes a second file: SessionLog START at step 3, then steps 3 and 4", files)

    # the image strips' forward passes leave training as it was; --tb false writes no tb/
    logs = []
    for d, extra in (("t1", ["--tb-images-every", "1"]), ("t0", ["--tb", "false"])):
        r = run("train", "--method", "advent", "--source", "gta5:b/sim", "--target", "cityscapes:b/real", "--model",
                "deeplab-mini", "--crop", "64x32", "--out", d, "--iters", "3", "--workers", "0", *extra)
        logs.append([l["terms"] for l in map(json.loads, open(os.path.join(tmp, d, "log.jsonl"))) if "terms" in l]
                    if r.returncode == 0 else None)
    report(logs[0] is not None and logs[0] == logs[1] and len(logs[0]) == 3 and
           not os.path.exists(os.path.join(tmp, "t0", "tb")),
           "image strips every iteration leave the losses as with --tb false (which writes no tb/)")

    # segda pretrain (its own loop): CKPT.tb/ beside the checkpoint
    r = run("pretrain", "--data", "b/crops", "--out", "pt.safetensors", "--iters", "3", "--batch", "2",
            "--val-every", "3")
    files = glob.glob(os.path.join(tmp, "pt.tb", "events.out.tfevents.*"))
    ok = r.returncode == 0 and len(files) == 1
    if ok:
        sc = {}
        for e in [decode_event(b) for b in records(open(files[0], "rb").read())][1:]:
            for v in e["values"]:
                sc.setdefault(v["tag"], []).append(e["step"])
        ok = sc.get("loss/ce") == [1, 2, 3] and sc.get("train/lr") == [1, 2, 3] and sc.get("val/top1") == [3]
    report(ok, "segda pretrain writes loss/ce, train/lr (steps 1..3) and val/top1 (step 3) to CKPT.tb/",
           r.stderr[-300:])

    # TensorBoard's own reader, where it can run
    cands = [os.environ.get("SEGDA_TB_PYTHON"), "/tmp/tbvenv/bin/python", sys.executable]
    probe = "from tensorboard.backend.event_processing import event_accumulator"
    py = next((c for c in cands if c and os.path.exists(c) and
               subprocess.run([c, "-c", probe], capture_output=True).returncode == 0), None)
    if not py:
        print("SKIP TensorBoard's reader: tensorboard is not installed (pip install tensorboard into a venv and "
              "set SEGDA_TB_PYTHON to its python)")
        return
    script = ("import json,sys\nfrom tensorboard.backend.event_processing import event_accumulator as ea\n"
              "a=ea.EventAccumulator(sys.argv[1],size_guidance={'scalars':0,'images':0});a.Reload()\n"
              "print(json.dumps({'s':{t:[[e.step,e.value] for e in a.Scalars(t)] for t in a.Tags()['scalars']},"
              "'i':{t:[[e.step,e.width,e.height] for e in a.Images(t)] for t in a.Tags()['images']}}))\n")
    r = subprocess.run([py, "-c", script, os.path.join(tmp, "r", "tb")], capture_output=True, text=True)
    try:
        tb = json.loads(r.stdout)
    except ValueError:
        report(False, "TensorBoard's EventAccumulator reads the file", r.stderr[-500:])
        return
    same = sorted(tb["s"]) == sorted(scal) and all(
        [tuple(x) for x in tb["s"][t]] == [(s, v) for s, v in scal[t]] for t in scal)
    report(same, "TensorBoard's EventAccumulator sees the same scalar tags, steps and values", list(tb["s"])[:5])
    report({t: [s for s, _, _ in v] for t, v in tb["i"].items()} == {t: [s for s, _ in v] for t, v in imgs.items()},
           "TensorBoard's EventAccumulator sees the image strips", tb["i"])


main()
sys.exit(1 if failed else 0)
