# qcow2core: the qcow2 driver (header, L1/L2, refcounts, cache, compression).
# imgcat: a tiny qemu-io-like tool over the block layer, used by the e2e tests.
add_executable(imgcat tools/imgcat.c)
target_link_libraries(imgcat PRIVATE imgpipe_engine)

imgpipe_unit_test(unit_qcow2 SOURCES unit/qcow2/test_qcow2.c LIBS imgpipe_engine)

foreach(t read write create hostile)
  imgpipe_e2e_test(qcow2_${t} e2e/qcow2/${t}.sh)
  set_tests_properties(qcow2_${t} PROPERTIES ENVIRONMENT "IMGCAT=$<TARGET_FILE:imgcat>")
endforeach()
