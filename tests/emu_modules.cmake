# emu_modules: the module path of the emulated device with fatbins built
# every way nvcc 13 writes them (tests/integration/emu_modules.sh).
set(emu_va ${CMAKE_CURRENT_SOURCE_DIR}/apps/emu_vector_add.cu)
set(emu_va_inc -I${CMAKE_CURRENT_SOURCE_DIR}/apps)
tr_cuda_app(emu_va_lz apps/emu_vector_add.cu ${emu_va_inc} -compress-mode=speed)
tr_cuda_app(emu_va_raw apps/emu_vector_add.cu ${emu_va_inc} -compress-mode=none)
tr_cuda_app(emu_va_multi apps/emu_vector_add.cu ${emu_va_inc}
  -gencode arch=compute_75,code=compute_75
  -gencode arch=compute_80,code=compute_80
  -gencode arch=compute_90,code=compute_90)
tr_cuda_app(emu_va_sass apps/emu_vector_add.cu ${emu_va_inc}
  -gencode arch=compute_75,code=sm_75)
tr_cuda_app(emu_va_ptx90 apps/emu_vector_add.cu ${emu_va_inc}
  -gencode arch=compute_90,code=compute_90)
tr_script_test(emu_modules integration/emu_modules.sh TIMEOUT 300 FAST)
