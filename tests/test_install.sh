#!/usr/bin/env bash
# make install PREFIX=tmp: the command, the converter as a command that
# works from any directory, headers, libsegda.so with its soname, libsegda.a
# and segda.pc; a small C program builds against it with
# `pkg-config --cflags --libs segda` (shared) and with Libs.private (static)
# and runs. Prints PASS/FAIL lines for tests/run.sh.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
fails=0
ok() { if [ "$1" -eq 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fails=$((fails + 1)); fi; }
if [ -n "${SEGDA_ASAN:-}" ]; then echo "SKIP make install: not under ASan (a sanitised library needs its runtime)"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
p=$tmp/prefix
make -C "$root" --no-print-directory install PREFIX="$p" BUILD="$BUILD" >"$tmp/install.log" 2>&1
ok $? "make install PREFIX=… succeeds" "$(tail -5 "$tmp/install.log")"
missing=""
for f in bin/segda bin/segda-pth2safetensors include/segda/api.h include/segda/core.h include/segda/infer.h \
         lib/libsegda.a lib/libsegda.so lib/libsegda.so.0 lib/libsegda.so.0.1.0 lib/pkgconfig/segda.pc; do
  [ -e "$p/$f" ] || missing="$missing $f"
done
ok "$([ -z "$missing" ]; echo $?)" "every file is installed" "missing:$missing"
soname=$(readelf -d "$p/lib/libsegda.so.0.1.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
ok "$([ "$soname" = libsegda.so.0 ]; echo $?)" "libsegda.so carries the soname libsegda.so.0" "soname '$soname'"
ok "$(nm -D "$p/lib/libsegda.so" | grep -q ' T sdt_'; [ $? -ne 0 ]; echo $?)" "the installed library has no test shims"

cat >"$tmp/prog.c" <<'C'
/* Scores a 2x4 prediction through the installed library. */
#include <segda/api.h>
#include <segda/model.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    uint64_t counts[19 * 20], ignored = 0;
    memset(counts, 0, sizeof counts);
    const uint8_t gt[8] = {0, 0, 1, 1, 2, 2, 255, 255}, pred[8] = {0, 0, 1, 2, 2, 2, 7, 7};
    if (sd_api_confusion_add(counts, &ignored, gt, pred, 4, 2, false, "prog")) {
        fprintf(stderr, "%s\n", sd_errmsg());
        return 1;
    }
    double iou[19], miou[3];
    sd_api_eval_compute(counts, ignored, iou, miou, NULL, NULL);
    sd_model *m;
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    if (sd_model_create(&o, &m)) {
        fprintf(stderr, "%s\n", sd_errmsg());
        return 1;
    }
    sd_model_free(m);
    printf("segda %s road %.3f side %.3f build %.3f ignored %llu\n", sd_version(), iou[0], iou[1], iou[2],
           (unsigned long long)ignored);
    return 0;
}
C
want="segda 0.1.0 road 1.000 side 0.500 build 0.667 ignored 2"
export PKG_CONFIG_PATH=$p/lib/pkgconfig
flags=$(pkg-config --cflags --libs segda)
ok $? "pkg-config --cflags --libs segda" "$flags"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/prog" "$tmp/prog.c" $flags >"$tmp/cc.log" 2>&1
ok $? "a C program builds with pkg-config's flags" "$(cat "$tmp/cc.log")"
out=$(cd "$tmp" && LD_LIBRARY_PATH=$p/lib ./prog 2>&1)
ok "$([ "$out" = "$want" ]; echo $?)" "it runs against the installed libsegda.so.0" "got '$out'"
ok "$(readelf -d "$tmp/prog" | grep -q 'NEEDED.*\[libsegda.so.0\]'; echo $?)" "it links the soname libsegda.so.0"
static="$p/lib/libsegda.a $(pkg-config --static --libs-only-l segda | sed 's/-lsegda//')"
cc -std=c11 -fopenmp -o "$tmp/prog_static" "$tmp/prog.c" $(pkg-config --cflags segda) $static >"$tmp/cc2.log" 2>&1
ok $? "it builds against libsegda.a with segda.pc's Libs.private" "$(cat "$tmp/cc2.log")"
out=$("$tmp/prog_static" 2>&1)
ok "$([ "$out" = "$want" ]; echo $?)" "the static build runs" "got '$out'"

# the installed command and the converter, from a directory that is not the checkout
out=$(cd "$tmp" && env -u SEGDA_BIN PATH=/usr/bin:/bin "$p/bin/segda" --version 2>&1)
ok "$([ "$(printf '%s\n' "$out" | head -1 | cut -d' ' -f1-2)" = "segda 0.1.0" ]; echo $?)" "the installed segda runs anywhere" "got '$out'"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  (cd "$tmp" && "$p/bin/segda" models --names deeplab-mini --classes 19 > names.txt &&
   /usr/bin/python3 - <<'PY'
import torch
sd = {}
for line in open("names.txt"):
    name, shape = line.split()
    sd[name] = torch.full([int(s) for s in shape.split(",") if s], 0.01)
torch.save({"state_dict": sd}, "mini.pth")
PY
  ) >"$tmp/pth.log" 2>&1
  (cd "$tmp" && env -u SEGDA_BIN PATH=/usr/bin:/bin "$p/bin/segda-pth2safetensors" mini.pth mini.safetensors \
     --model deeplab-mini --classes 19) >>"$tmp/pth.log" 2>&1
  ok "$([ $? -eq 0 ] && [ -s "$tmp/mini.safetensors" ]; echo $?)" \
     "segda-pth2safetensors converts from another directory (finds the segda beside it)" "$(tail -5 "$tmp/pth.log")"
  out=$(cd "$tmp" && env -u SEGDA_BIN PATH=/usr/bin:/bin /usr/bin/python3 "$root/tools/pth2safetensors.py" \
          mini.pth mini2.safetensors --model deeplab-mini 2>&1)
  ok "$([ $? -eq 0 ] && cmp -s "$tmp/mini.safetensors" "$tmp/mini2.safetensors"; echo $?)" \
     "tools/pth2safetensors.py finds the checkout's build/segda from another directory" "$out"
else
  echo "SKIP segda-pth2safetensors: no torch for /usr/bin/python3"
fi
exit $((fails > 0))
