# Block layer unit tests (fake drivers over in-memory and temp files).
imgpipe_unit_test(unit_blocklayer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/blocklayer/test_block.c
  LIBS imgpipe_formats)

# imgpipe-faulty: imgpipe with the fault-injection filter (IMGPIPE_FAULT=...),
# for crash and I/O-error tests (tests/support/fault_file.h).
add_executable(imgpipe-faulty
  ${CMAKE_CURRENT_SOURCE_DIR}/support/fault_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/support/fault_file.c)
target_include_directories(imgpipe-faulty PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
target_link_libraries(imgpipe-faulty PRIVATE imgpipe_cli)
