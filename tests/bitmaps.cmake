# bitmaps: qcow2 persistent dirty bitmaps (qcow2-bitmap*.c, qemu-img bitmap,
# convert --bitmaps).  e2e scripts use tests/e2e/bitmaps/bmtool.py to read
# and damage bitmap directories.
imgpipe_unit_test(unit_bitmaps_dir SOURCES unit/bitmaps/test_bitmap_dir.c LIBS imgpipe_engine)

foreach(t info_check ops data hostile convert)
  imgpipe_e2e_test(bitmaps_${t} e2e/bitmaps/${t}.sh)
endforeach()
