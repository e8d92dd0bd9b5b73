#!/bin/bash
# parallels: both magics (samples), create options, round trips, check -r, hostile headers.
HERE=${0%/*}; [ "$HERE" = "$0" ] && HERE=.
. "$HERE/../lib.sh"
. "$HERE/f1lib.sh"

check_sample qemu-parallels-v1 parallels
check_sample qemu-parallels-v2 parallels
create_matrix parallels $((6 * 1048576)) "" "cluster_size=65536" "cluster_size=4096" "cluster_size=3000"
imgs=()
for size in 1 1048577 12345678; do
  qemu-img create -q -f parallels q$size.par $size; "$F1" create parallels o$size.par $size
  imgs+=("q$size.par" "o$size.par")
done
qsizes "" "${imgs[@]}"
for size in 1 1048577 12345678; do
  check_eq "parallels size $size" "${QS[q$size.par]:-}" "${QS[o$size.par]:-}"
done

# writing into the v1 ("WithoutFreeSpace", BAT in sectors) sample
printf 'v1 write' >w.raw
"$F1" create parallels c.par 4194304 cluster_size=65536
"$F1" create parallels h0.par 4194304
mk cp "$SAMPLES/qemu-parallels-v1" v1.par :: pattern c.raw 4 \
  :: patch h0.par w.par 64 '\xff\xff\xff\xff'
"$F1" write v1.par parallels w.raw
same_read "v1 written" v1.par
qemu_clean v1.par

# check: leak at the end, cluster outside the image, unclean shutdown
"$F1" write c.par parallels c.raw
truncate -s +100000 c.par
"$F1" check c.par parallels >/dev/null 2>&1; rc=$?; qemu-img check c.par >/dev/null 2>&1; check_eq "leak exit" $? $rc
have_cmd check && same_output "parallels check leak json" check --output=json c.par
"$F1" check c.par parallels leaks >/dev/null 2>&1; qemu_clean c.par
mk patch c.par c.par $((64 + 4 * 60)) '\xff\xff\x00\x00'
"$F1" check c.par parallels >/dev/null 2>&1; rc=$?; qemu-img check c.par >/dev/null 2>&1; check_eq "outside exit" $? $rc
have_cmd check && same_output "parallels check outside json" check --output=json c.par
"$F1" check c.par parallels all >/dev/null 2>&1; qemu_clean c.par
mk patch c.par c.par 44 '\x59\x6e\x6f\x74'
out=$(exec "$F1" write c.par parallels w.raw 2>&1)
check_eq "unclean rw" "f1tool: Could not open 'c.par': parallels: Image was not closed correctly; cannot be opened read/write" "$out"
"$F1" check c.par parallels >/dev/null 2>&1; check_eq "unclean check exit" 2 $?
"$F1" check c.par parallels all >/dev/null 2>&1; qemu_clean c.par

# hostile headers
hostile_img parallels h0.par \
  version 16 '\x03' =qemu \
  tracks0 28 '\x00\x00\x00\x00' =qemu \
  tracks-big 28 '\x00\x00\x00\x7f' =qemu \
  catalog 32 '\xff\xff\xff\x7f' =qemu \
  catalog-past-eof 32 '\xff\xff\xff\x0f' "Catalog too large"
# huge BAT entries and sizes read as zeros/fail cleanly
"$F1" cat w.par >/dev/null 2>&1; rc=$?; [ $rc -le 1 ] && pass || fail "wild BAT: exit $rc"
same_info c.par
finish
