# commit and rebase through the copy pipeline: differential tests against
# qemu-img 7.2 on multi-chunk images, allocation (qemu-img map) included,
# and independence of the result from the worker count.
imgpipe_e2e_test(e2e_cmds_inplace_copy e2e/cmds/inplace_copy.sh)
imgpipe_unit_test(unit_inplace_compare_run
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/inplace/test_compare_run.c
  LIBS imgpipe_engine)
