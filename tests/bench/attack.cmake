# tests/bench/attack.cmake: the attack benchmark's model-poisoning client
# (tests/bench/attack_bench.py, test_attack_quick.py; see tests/bench/README.md,
# "Attacks (issue 12)"). gb_poison_client is glassbox-client compiled from the
# very same sources with GB_BENCH_POISON_SCALE=-10: client/task_runner.c then
# sends delta = -10 x (trained - global), a sign-flipped update scaled x10.
# Only this file defines the macro, so the shipped glassbox-client (built from
# glassbox_client_lib without it) is byte for byte what it was. Built into the
# top of the build tree beside glassbox-client; never installed.
add_executable(gb_poison_client ${GB_CLIENT_SOURCES} ${CMAKE_SOURCE_DIR}/client/main.c)
target_compile_definitions(gb_poison_client PRIVATE GB_BENCH_POISON_SCALE=-10)
target_include_directories(gb_poison_client PRIVATE ${CMAKE_SOURCE_DIR}/client)
target_link_libraries(gb_poison_client PRIVATE glassbox PkgConfig::JANSSON)
set_target_properties(gb_poison_client PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# The benchmark end to end, tiny (mlp, 4 rounds, 6,000 samples, model
# poisoning with fedavg, guard off and flags): poisoning hurts, the guard
# flags both attackers (test_attack_quick.py). About 30 s on two cores.
find_program(GB_ATTACK_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_ATTACK_PYTHON)
  add_test(NAME bench/test_attack_quick
           COMMAND ${GB_ATTACK_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_attack_quick.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(bench/test_attack_quick PROPERTIES
    LABELS "cli;bench;federation" TIMEOUT 300)
endif()
