# formats1: vpc, vdi, qed, qcow, parallels, bochs, cloop, dmg.
# f1tool drives the drivers through the block layer (tests/unit/formats1/f1tool.c);
# the e2e scripts compare its results (and imgpipe run's) with qemu-img.
add_executable(f1tool ${CMAKE_CURRENT_SOURCE_DIR}/unit/formats1/f1tool.c)
target_link_libraries(f1tool PRIVATE imgpipe_formats imgpipe_blocklayer imgpipe_common)

# imgpipe_f1_e2e(NAME SCRIPT): like imgpipe_e2e_test, with F1TOOL in the environment.
function(imgpipe_f1_e2e name script)
  imgpipe_e2e_test(${name} ${script})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "F1TOOL=$<TARGET_FILE:f1tool>")
endfunction()

imgpipe_f1_e2e(e2e_formats1_vpc e2e/formats1/vpc.sh)
imgpipe_f1_e2e(e2e_formats1_vdi e2e/formats1/vdi.sh)
imgpipe_f1_e2e(e2e_formats1_qcow e2e/formats1/qcow.sh)
imgpipe_f1_e2e(e2e_formats1_qed e2e/formats1/qed.sh)
imgpipe_f1_e2e(e2e_formats1_parallels e2e/formats1/parallels.sh)
imgpipe_f1_e2e(e2e_formats1_readonly e2e/formats1/readonly.sh)
imgpipe_f1_e2e(e2e_formats1_dmg e2e/formats1/dmg.sh)
imgpipe_f1_e2e(e2e_formats1_oddsizes e2e/formats1/oddsizes.sh)
imgpipe_f1_e2e(e2e_formats1_vhd_creators e2e/formats1/vhd_creators.sh)
imgpipe_f1_e2e(e2e_formats1_samples e2e/formats1/samples.sh)
