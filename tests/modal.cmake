# The Modal provider's Python parts (tools/modal): the Modal app driven
# through its ASGI interface with a fake Modal backend (test_app; it uses
# the real `modal` package when python3 has it, else a minimal stand-in of
# it), the loopback stand-in of the app with the real agent behind its
# relays (test_standin), and `tremote modal setup`'s bundle (test_setup,
# offline).  Without python3 they are not registered.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME modal_app
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/modal/test_app.py
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(modal_app PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77
                       LABELS "unit;fast")
  add_test(NAME modal_standin
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/modal/test_standin.py
                   $<TARGET_FILE:tremote-gpu-agent> ${CMAKE_SOURCE_DIR})
  set_tests_properties(modal_standin PROPERTIES TIMEOUT 240 SKIP_RETURN_CODE 77
                       LABELS "script;fast"
                       ENVIRONMENT "TR_SANITIZE=${TR_SANITIZE}")
  add_test(NAME modal_setup
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/modal/test_setup.py
                   $<TARGET_FILE:tremote-gpu-agent> ${CMAKE_SOURCE_DIR})
  set_tests_properties(modal_setup PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                       LABELS "unit;fast")
else()
  message(STATUS "python3 not found: the modal_* tests are not registered")
endif()
