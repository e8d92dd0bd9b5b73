# convert / dd / copy pipeline tests (owner: convert).
imgpipe_unit_test(unit_copy_pipeline
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/convert/test_copy_pipeline.c
  LIBS imgpipe_engine)

imgpipe_e2e_test(e2e_convert_raw e2e/convert/convert_raw.sh)
imgpipe_e2e_test(e2e_convert_qcow2 e2e/convert/convert_qcow2.sh)
imgpipe_e2e_test(e2e_convert_errors e2e/convert/convert_errors.sh)
imgpipe_e2e_test(e2e_convert_atomic e2e/convert/convert_atomic.sh)
imgpipe_e2e_test(e2e_dd e2e/convert/dd.sh)
