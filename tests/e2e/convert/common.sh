# common.sh — helpers for the convert/dd e2e tests (sourced after lib.sh).

# Our messages carry "imgpipe: " where qemu-img says "qemu-img: " (see
# src/engine/qemu_img.c); compare the text after the prefix.
norm_err() { sed -e 's/^qemu-img: /P: /' -e 's/^imgpipe: /P: /' -e "s/'qemu-img --help'/'P --help'/" \
  -e "s/'imgpipe run --help'/'P --help'/"; }

# same_err WHAT ARGS...: same exit code and same stderr (prefix-normalised)
same_err() {
  local what=$1; shift
  local ea eb
  ea=$( { qemu-img "$@" 2>&1 >/dev/null; echo "exit $?"; } | norm_err)
  eb=$( { qi "$@" 2>&1 >/dev/null; echo "exit $?"; } | norm_err)
  if [ "$ea" != "$eb" ]; then
    fail "$what: stderr/exit differ"; diff <(echo "$ea") <(echo "$eb") | head -10 >&2
  else pass; fi
}

# same_file WHAT A B: byte-identical files
same_file() {
  if cmp -s "$2" "$3"; then pass; else fail "$1: $2 and $3 differ"; fi
}

# same_map WHAT A B [FMT]: qemu-img map (allocation, zero/data) identical
same_map() {
  local f=${4:+-f $4}
  local a b
  a=$(qemu-img map $f --output=json "$2" | sed 's/"offset": [0-9]*//')
  b=$(qemu-img map $f --output=json "$3" | sed 's/"offset": [0-9]*//')
  if [ "$a" == "$b" ]; then pass; else
    fail "$1: allocation differs ($2 vs $3)"; diff <(echo "$a") <(echo "$b") | head -10 >&2
  fi
}

# has_format FMT: does this imgpipe build know FMT?
has_format() { qi --help 2>/dev/null | grep -q "^Supported formats:.* $1\b"; }

# mixed FILE MB SEED: data (random + text), allocated zeros and holes
mixed() {
  local f=$1 mb=$2 seed=$3 i
  rm -f "$f"; truncate -s "${mb}M" "$f"
  for ((i = 0; i < mb; i++)); do
    case $(((i + seed) % 5)) in
      0) head -c 1M </dev/urandom | dd of="$f" bs=1M seek=$i conv=notrunc status=none ;;
      1) dd if=/dev/zero of="$f" bs=1M seek=$i count=1 conv=notrunc status=none ;;
      2) ;; # hole
      3) yes "imgpipe line $i seed $seed" | head -c 1M | dd of="$f" bs=1M seek=$i conv=notrunc status=none ;;
      4) head -c 4096 </dev/urandom | dd of="$f" bs=4096 seek=$((i * 256 + 7)) conv=notrunc status=none
         head -c 100 </dev/urandom | dd of="$f" bs=1 seek=$((i * 1048576 + 70000)) conv=notrunc status=none ;;
    esac
  done
}
