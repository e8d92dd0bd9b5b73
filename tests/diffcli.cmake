# Differential audit of the qemu-img face: a table of qemu-img command lines
# run through qemu-img 7.2 and `imgpipe run`, outputs, exit codes and the
# files they write compared (tests/e2e/diffcli).
imgpipe_e2e_test(e2e_diffcli e2e/diffcli/diffcli.sh)
