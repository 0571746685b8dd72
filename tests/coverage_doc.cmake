# docs/COVERAGE.md: the build's copy (shim/gen_coverage.py) agrees with
# libcudart.so.13's exports and shim/implemented.list, and the committed
# copy is the same file.  To refresh it: build, copy build/docs/COVERAGE.md
# to docs/.  (Included by tests/CMakeLists.txt; paths are relative to tests/.)
tr_script_test(coverage_doc integration/coverage_doc.sh FAST TIMEOUT 60)
