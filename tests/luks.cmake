# luks: the LUKS format driver, the shared LUKS crypto block and encrypted
# qcow2 (src/formats/luks*.c, src/blocklayer/secret_store.c).
imgpipe_unit_test(unit_luks SOURCES unit/luks/test_luks.c LIBS imgpipe_formats)
imgpipe_unit_test(unit_luks_ciphers SOURCES unit/luks/test_luks_ciphers.c LIBS imgpipe_formats)

foreach(t roundtrip info_errors amend hostile qcow2 ciphers accept)
  imgpipe_e2e_test(luks_${t} e2e/luks/${t}.sh)
endforeach()
