# End-to-end tests: real nvcc-built programs under the shim, against the
# real broker and the real LOCAL agent (emulated device).
tr_cuda_app(memory_roundtrip apps/memory_roundtrip.cu -Xcompiler -pthread)
tr_script_test(memory_roundtrip integration/memory_roundtrip.sh TIMEOUT 300 FAST)
tr_cuda_app(big_copy apps/big_copy.cu)
tr_script_test(big_copy integration/big_copy.sh TIMEOUT 300)
tr_cuda_app(launch_module apps/launch_module.cu)
tr_script_test(launch_module integration/launch_module.sh TIMEOUT 120 FAST)
tr_cuda_app(async_launches apps/async_launches.cu)
tr_script_test(async_launches integration/async_launches.sh TIMEOUT 300 FAST)
tr_cuda_app(program_life apps/program_life.cu)
tr_script_test(program_life integration/program_life.sh TIMEOUT 300 FAST)
tr_cuda_app(streams_events apps/streams_events.cu -Xcompiler -pthread)
tr_script_test(streams_events integration/run_app.sh TIMEOUT 120 FAST ARGS streams_events)
