# Engine: qemu-img commands create/info/check/map/measure/compare and the
# `imgpipe run` front end (differential tests against qemu-img), plus the
# unit tests of src/common's parsers and printers.
imgpipe_unit_test(unit_common_parse
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/common/test_parse.c
  LIBS imgpipe_common)
imgpipe_unit_test(unit_common_json
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/common/test_json.c
  LIBS imgpipe_common)
imgpipe_unit_test(unit_engine_common
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/engine/test_engine_common.c
  LIBS imgpipe_engine)

foreach(t cli create info check map compare measure)
  imgpipe_e2e_test(e2e_engine_${t} e2e/engine/${t}.sh)
endforeach()
