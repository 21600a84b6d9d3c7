#!/usr/bin/env bash
# `segda help CMD` prints exactly what `segda CMD --help` prints, for every
# command `segda --help` lists, and exits 0; an unknown CMD exits 2 naming it.
# Prints PASS/FAIL lines for tests/run.sh.
set -u
BIN=${SEGDA_BIN:-build/segda}
fails=0
ok() { if [ "$1" -eq 0 ]; then echo "PASS $2"; else echo "FAIL $2${3:+: $3}"; fails=$((fails + 1)); fi; }
cmds=$("$BIN" --help | sed -n 's/^  \([a-z-]*\)  .*/\1/p')
n=$(echo "$cmds" | wc -w)
ok "$([ "$n" -ge 10 ]; echo $?)" "segda --help lists the commands" "found $n"
for c in $cmds; do
  a=$("$BIN" help "$c" 2>&1); ra=$?
  b=$("$BIN" "$c" --help 2>&1); rb=$?
  ok "$([ $ra -eq 0 ] && [ $rb -eq 0 ] && [ -n "$a" ] && [ "$a" = "$b" ]; echo $?)" \
     "segda help $c = segda $c --help" "exit $ra/$rb, $(diff <(echo "$a") <(echo "$b") | head -3)"
done
out=$("$BIN" help no-such-command 2>&1); rc=$?
ok "$([ $rc -eq 2 ] && [[ "$out" == *"unknown command 'no-such-command'"* ]]; echo $?)" \
   "segda help with an unknown command exits 2 naming it" "exit $rc: $out"
"$BIN" help >/dev/null 2>&1
ok $? "segda help alone prints the command list"
exit $((fails > 0))
