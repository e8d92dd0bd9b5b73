# qcow2ext: qcow2 check, snapshots, resize, amend, bitmaps.
imgpipe_e2e_test(qcow2ext_check e2e/qcow2ext/check.sh)
imgpipe_e2e_test(qcow2ext_check_diff e2e/qcow2ext/check_diff.sh)
imgpipe_e2e_test(qcow2ext_snapshot e2e/qcow2ext/snapshot.sh)
imgpipe_e2e_test(qcow2ext_resize e2e/qcow2ext/resize.sh)
imgpipe_e2e_test(qcow2ext_amend e2e/qcow2ext/amend.sh)
