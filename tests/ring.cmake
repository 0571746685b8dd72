# The shared-memory lane (tools/common/ring.c): unit tests and the stress
# test.  ring_stress moves 10 million records (about 760 GB) between two
# processes and is too slow for the sanitizer builds; ring_stress_threads is
# its two-thread variant with fewer and smaller records (up to 256 KiB, so
# some still go through the upload area), small enough for ASan and TSan.
tr_unit_test(test_ring SOURCES unit/test_ring.c FAST)
tr_unit_test(ring_stress SOURCES unit/ring_stress.c LIBS m TIMEOUT 180
             ARGS --records 10000000)
tr_unit_test(ring_stress_threads SOURCES unit/ring_stress.c LIBS m FAST
             TIMEOUT 120 ARGS --threads --records 200000 --max-log2 18)
