#!/bin/bash
# imgpipe run: global options, help layout, option parsing errors vs qemu-img.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

# --help: qemu-img's layout, the syntax line of each command we have, formats
help=$(qi --help); rc=$?
check_eq "--help exit code" 0 "$rc"
qhelp=$(qemu-img --help)
for cmd in check compare create info map measure; do
  ours=$(grep "^  $cmd " <<<"$help")
  theirs=$(grep "^  $cmd " <<<"$qhelp")
  check_eq "--help syntax of $cmd" "$theirs" "$ours"
done
grep -q '^Supported formats: .*raw' <<<"$help" && pass || fail "--help lists no raw format"
grep -q '^Command parameters:' <<<"$help" && pass || fail "--help has no 'Command parameters:'"
check_eq "create --help = --help" "$help" "$(qi create --help)"
check_eq "info -h = --help" "$help" "$(qi info -h)"
check_rc "info -h exit code" 0 qi info -h

ver=$(qi --version | head -1)
[[ $ver =~ ^qemu-img\ version\ 7\.2 ]] && pass || fail "--version: $ver"
check_rc "-V exit code" 0 qi -V

# errors of the dispatcher and of getopt, text and exit code as qemu-img
diff_run "no arguments"
diff_run "unknown command" frobnicate x
diff_run "unknown global option" --frob info x
diff_run "unknown long option" info --frob x
diff_run "unknown short option" info -z x
diff_run "missing argument" info x -f
diff_run "missing argument, long" info x --output
diff_run "missing argument, -o" create x 1k -o
diff_run "ambiguous prefix stays unrecognized" create --ba x x
diff_run "no file name" info
diff_run "two file names" info a b
diff_run "bad --output" info --output=xml x
diff_run "check: bad -r" check -r some x
diff_run "compare: one name" compare x
diff_run "map: one name" map
diff_run "measure: two names" measure a b

# permutation and long-option prefixes as GNU getopt_long
both "qemu-img create -q -f raw p.raw 64k"
diff_run "options after the file name" info p.raw --output json -f raw
diff_run "unambiguous prefix" info --out=json --backing-ch p.raw
diff_run "-- ends options" info -f raw -- p.raw

# qemu 10.x long names are accepted too
a=$(cd "$IDIR" && qi info --format raw --output json --force-share p.raw)
b=$(cd "$QDIR" && qemu-img info -f raw --output json -U p.raw)
check_eq "10.x long names (info)" "$b" "$a"

finish
