# Conversions between every pair of writable formats (tests/e2e/matrix).
imgpipe_e2e_test(e2e_convert_matrix e2e/matrix/convert_matrix.sh)
