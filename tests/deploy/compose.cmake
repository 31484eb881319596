# The federation in containers (test_compose.py): images built here, the
# compose federation with faults, the swarm stack. Runs only with
# GLASSBOX_DOCKER=1 in the environment (it takes minutes); skipped otherwise.
find_program(GB_DEPLOY_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_DEPLOY_PYTHON)
  add_test(NAME deploy/test_compose
           COMMAND ${GB_DEPLOY_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_compose.py
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(deploy/test_compose PROPERTIES LABELS "deploy;docker" TIMEOUT 3600
                       SKIP_RETURN_CODE 77)
endif()
