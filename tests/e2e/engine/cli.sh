#!/bin/bash
# imgpipe run: global options, help layout, option parsing errors vs qemu-img.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/common.sh"

# --help: qemu-img's layout, the syntax line of each command we have, formats
help=$(exec "$IMGPIPE" run --help); rc=$?
check_eq "--help exit code" 0 "$rc"
qhelp=$(exec qemu-img --help)
# lines TEXT GLOB: the lines of TEXT matching GLOB (grep '^...'), in FOUND
lines() {
  local l
  FOUND=""
  while IFS= read -r l; do
    # shellcheck disable=SC2053
    [[ $l == $2 ]] && FOUND+=${FOUND:+$'\n'}$l
  done <<<"$1"
}
for cmd in check compare create info map measure; do
  lines "$help" "  $cmd *"; ours=$FOUND
  lines "$qhelp" "  $cmd *"; theirs=$FOUND
  check_eq "--help syntax of $cmd" "$theirs" "$ours"
done
lines "$help" "Supported formats: *raw*"
[ -n "$FOUND" ] && pass || fail "--help lists no raw format"
lines "$help" "Command parameters:*"
[ -n "$FOUND" ] && pass || fail "--help has no 'Command parameters:'"
check_eq "create --help = --help" "$help" "$(exec "$IMGPIPE" run create --help)"
check_eq "info -h = --help" "$help" "$(exec "$IMGPIPE" run info -h)"
check_rc "info -h exit code" 0 qi info -h

ver=$(exec "$IMGPIPE" run --version)
ver=${ver%%$'\n'*}
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
both "qimg create -q -f raw p.raw 64k"
diff_run "options after the file name" info p.raw --output json -f raw
diff_run "unambiguous prefix" info --out=json --backing-ch p.raw
diff_run "-- ends options" info -f raw -- p.raw

# qemu 10.x long names are accepted too
a=$(cd "$IDIR" && exec "$IMGPIPE" run info --format raw --output json --force-share p.raw)
b=$(cd "$QDIR" && exec qemu-img info -f raw --output json -U p.raw)
check_eq "10.x long names (info)" "$b" "$a"

finish
