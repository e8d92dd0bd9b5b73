# Hardening (issue #6): crash and I/O-error injection, kill -9, one test per
# historic QEMU CVE class, and the untrusted-image reference policy.  The
# fault tests drive imgpipe-faulty (tests/blocklayer.cmake) through the
# IMGPIPE_FAULTY environment variable.  IMGPIPE_LONG_TESTS=1 widens the
# sweeps (every write point, more kill moments); see docs/RELIABILITY.md.
foreach(t faults kill kill_sweep cves policy budgets)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/hardening/${t}.sh)
    imgpipe_e2e_test(hardening_${t} e2e/hardening/${t}.sh)
    set_property(TEST hardening_${t} APPEND PROPERTY LABELS hardening)
    if(TARGET imgpipe-faulty)
      set_property(TEST hardening_${t} APPEND PROPERTY ENVIRONMENT
                   "IMGPIPE_FAULTY=$<TARGET_FILE:imgpipe-faulty>")
    endif()
  endif()
endforeach()
