# formats2: the vmdk and vhdx format drivers (and CRC-32C).
#
# fmt2tool drives the drivers directly (write_zeroes, check with repair,
# reproducible create) where the qemu-img command line cannot reach; the e2e
# scripts get its path in $FMT2TOOL.
add_executable(fmt2tool ${CMAKE_CURRENT_SOURCE_DIR}/unit/formats2/fmt2tool.c)
target_link_libraries(fmt2tool PRIVATE imgpipe_formats)

imgpipe_unit_test(test_formats2_crc32c
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/formats2/test_crc32c.c
  LIBS imgpipe_formats)
imgpipe_unit_test(test_formats2_vmdk
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/formats2/test_vmdk.c
  LIBS imgpipe_formats)
imgpipe_unit_test(test_formats2_vhdx
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/formats2/test_vhdx.c
  LIBS imgpipe_formats)

foreach(t vmdk_samples vmdk_roundtrip vmdk_hostile vhdx)
  imgpipe_e2e_test(formats2_${t} e2e/formats2/${t}.sh)
  set_tests_properties(formats2_${t} PROPERTIES ENVIRONMENT "FMT2TOOL=$<TARGET_FILE:fmt2tool>")
endforeach()
imgpipe_e2e_test(formats2_vmdk_esx e2e/formats2/vmdk_esx.sh)
