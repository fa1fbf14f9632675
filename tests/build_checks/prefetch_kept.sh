#!/bin/bash
# Software prefetches the CPU code depends on are still in its object code.
# GCC 12 deletes every call to a function whose only work is prefetching (its IPA finds it
# free of side effects); cpu/cpu_backend.cpp's KV prefetch went missing that way unnoticed
# for a day of benchmarks (docs/benchmarks.md, session 19). Usage: prefetch_kept.sh OBJ=INSN...
# (each object must hold at least one INSN, e.g. prefetcht1).
set -u
command -v objdump >/dev/null || { echo "objdump not found (binutils)"; exit 1; }
status=0
for spec in "$@"; do
  obj=${spec%%=*} insn=${spec#*=}
  [ -f "$obj" ] || { echo "FAIL: no object $obj"; status=1; continue; }
  n=$(objdump -d "$obj" | grep -c -w "$insn")
  if [ "$n" -gt 0 ]; then echo "ok: $(basename "$obj") holds $n $insn"
  else echo "FAIL: $(basename "$obj") holds no $insn"; status=1; fi
done
exit $status
