# The generated hostile-image corpus (tests/hostile): several hundred malformed
# images built from qemu-img-made seeds; imgpipe must never crash, hang or
# balloon, and must agree with qemu-img's verdict (or divergences.tsv says why).
add_test(NAME hostile_corpus
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/run_corpus.sh $<TARGET_FILE:imgpipe>
          ${IMGPIPE_SAMPLES_DIR} ${CMAKE_CURRENT_BINARY_DIR}/scratch/hostile_corpus)
set_tests_properties(hostile_corpus PROPERTIES LABELS hostile SKIP_RETURN_CODE 77 TIMEOUT 900)
