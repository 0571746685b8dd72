# libtremote (tools/libtremote): the GPU type table and errors offline,
# and the machine calls against a real broker.
tr_unit_test(test_libtremote SOURCES unit/test_libtremote.c LIBS tremote FAST)
tr_script_test(libtremote integration/libtremote.sh TIMEOUT 120 FAST)
tr_script_test(smi integration/smi.sh TIMEOUT 120 FAST)
