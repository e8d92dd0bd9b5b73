# resize, amend, rebase, commit, snapshot, bench, bitmap (+ --object secrets):
# unit tests for the pure parts, e2e tests against qemu-img 7.2.
imgpipe_unit_test(unit_cmds_secrets
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/cmds/test_secrets.c
  LIBS imgpipe_engine)
imgpipe_unit_test(unit_cmds_common
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/cmds/test_cmds_common.c
  LIBS imgpipe_engine)

foreach(t resize commit rebase snapshot amend bench bitmap lock progress)
  imgpipe_e2e_test(e2e_cmds_${t} e2e/cmds/${t}.sh)
endforeach()
