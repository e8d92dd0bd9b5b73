# Fuzz targets (tests/fuzz): one per format, on in-memory images.  Every CTest
# run replays the saved corpus (tests/fuzz/corpus/<format>) and the hostile
# seeds with a normal build; -DIMGPIPE_FUZZ=ON (clang) builds libFuzzer
# binaries for longer runs (see tests/fuzz/README.md).
set(IMGPIPE_FUZZ_FORMATS probe raw qcow2 qcow qed vdi vpc vmdk vhdx parallels bochs cloop dmg luks)
foreach(fmt ${IMGPIPE_FUZZ_FORMATS})
  if(IMGPIPE_FUZZ)
    add_executable(fuzz_${fmt} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_image.c)
    target_compile_options(fuzz_${fmt} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${fmt} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzz_${fmt} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_image.c
                               ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.c)
    add_test(NAME fuzz_replay_${fmt}
      COMMAND fuzz_${fmt} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${fmt}
              ${CMAKE_CURRENT_BINARY_DIR}/scratch/hostile_corpus/corpus)
    set_tests_properties(fuzz_replay_${fmt} PROPERTIES LABELS fuzz TIMEOUT 600
                         DEPENDS hostile_corpus)
  endif()
  target_compile_definitions(fuzz_${fmt} PRIVATE FUZZ_FORMAT="${fmt}")
  target_link_libraries(fuzz_${fmt} PRIVATE imgpipe_engine)
endforeach()

# The recipe parser (src/planner/recipe.h): fuzz_recipe, replayed over
# tests/fuzz/corpus/recipe and the example recipes.
if(IMGPIPE_FUZZ)
  add_executable(fuzz_recipe ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_recipe.c)
  target_compile_options(fuzz_recipe PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_recipe PRIVATE -fsanitize=fuzzer)
else()
  add_executable(fuzz_recipe ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_recipe.c
                             ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.c)
  add_test(NAME fuzz_replay_recipe
    COMMAND fuzz_recipe ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/recipe
            ${CMAKE_SOURCE_DIR}/examples ${CMAKE_SOURCE_DIR}/recipes)
  set_tests_properties(fuzz_replay_recipe PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
target_link_libraries(fuzz_recipe PRIVATE imgpipe_planner)
