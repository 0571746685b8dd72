# The Modal provider's Python parts (tools/modal): the Modal app driven
# through its ASGI interface with a fake Modal backend (test_app; it uses
# the real `modal` package when python3 has it, else a minimal stand-in of
# it).  Without python3 it is not registered.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME modal_app
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/modal/test_app.py
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(modal_app PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77
                       LABELS "unit;fast")
else()
  message(STATUS "python3 not found: the modal_* tests are not registered")
endif()
