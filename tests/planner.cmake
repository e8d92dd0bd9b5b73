# Planner tests (issue #4): cmocka unit tests of the recipe parser, the DAG,
# action keys, the cache and the executor (with a fake runner), and e2e
# scripts that drive the real binary on real files.
#
# Included from tests/CMakeLists.txt, which defines imgpipe_unit_test() and
# imgpipe_e2e_test().  (tools/pdev builds only the unit tests.)
set(PLANNER_UNIT_DIR ${CMAKE_CURRENT_LIST_DIR}/unit/planner)

foreach(t test_recipe test_graph_key test_cache test_build)
  if(COMMAND imgpipe_unit_test)
    imgpipe_unit_test(planner_${t} SOURCES ${PLANNER_UNIT_DIR}/${t}.c LIBS imgpipe_planner)
  else()
    add_executable(planner_${t} ${PLANNER_UNIT_DIR}/${t}.c)
    target_link_libraries(planner_${t} PRIVATE imgpipe_planner PkgConfig::CMOCKA)
    add_test(NAME planner_${t} COMMAND planner_${t})
  endif()
endforeach()

if(COMMAND imgpipe_e2e_test)
  file(GLOB PLANNER_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/e2e/pipeline/t_*.sh)
  foreach(script ${PLANNER_E2E})
    get_filename_component(name ${script} NAME_WE)
    file(RELATIVE_PATH rel ${CMAKE_CURRENT_SOURCE_DIR} ${script})
    imgpipe_e2e_test(pipeline_${name} ${rel})
  endforeach()
endif()
