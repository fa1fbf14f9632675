#!/bin/bash
# Software prefetches the CPU code depends on are still in its object code.
# GCC 12 deletes every call to a function whose only work is prefetching (its IPA finds it
# free of side effects), and a loop whose body only prefetches: cpu/cpu_backend.cpp's KV
# prefetch went missing that way unnoticed for a day of benchmarks (docs/benchmarks.md,
# session 19), and a draft of the attention walk lost its own (session 20).
# Usage: prefetch_kept.sh SPEC...  with SPEC = FILE=INSN (the object or archive holds at
# least one INSN, e.g. prefetcht1) or FILE@NAME=INSN (every function whose mangled name
# contains NAME holds one, and there is at least one such function).
set -u
command -v objdump >/dev/null || { echo "objdump not found (binutils)"; exit 1; }
status=0
for spec in "$@"; do
  target=${spec%%=*} insn=${spec#*=}
  file=${target%%@*} name=
  [ "$file" != "$target" ] && name=${target#*@}
  [ -f "$file" ] || { echo "FAIL: no file $file"; status=1; continue; }
  if [ -z "$name" ]; then
    n=$(objdump -d "$file" | grep -c -w "$insn")
    if [ "$n" -gt 0 ]; then echo "ok: $(basename "$file") holds $n $insn"
    else echo "FAIL: $(basename "$file") holds no $insn"; status=1; fi
    continue
  fi
  # One line per function whose name contains NAME: its count of INSN, then its name.
  counts=$(objdump -d --no-show-raw-insn "$file" | awk -v name="$name" -v insn="$insn" '
    /^[0-9a-f]+ <.*>:$/ { if (f != "") print c, f; f = (index($2, name) ? $2 : ""); c = 0; next }
    f != "" { for (i = 1; i <= NF; ++i) if ($i == insn) { ++c; break } }
    END { if (f != "") print c, f }')
  if [ -z "$counts" ]; then echo "FAIL: no function named *$name* in $(basename "$file")"; status=1; continue; fi
  missing=$(echo "$counts" | awk '$1 == 0 { print $2 }')
  if [ -n "$missing" ]; then echo "FAIL: without $insn:"; echo "$missing"; status=1
  else echo "ok: $(echo "$counts" | wc -l) functions *$name* in $(basename "$file") hold $insn"; fi
done
exit $status
