# Helpers shared by the module folders.

# facetrain_reuse_pch(TARGET [NN]): compile TARGET's sources with the shared ATen precompiled
# header, or with NN the one that adds LibTorch's C++ frontend (torch::nn, optim, autograd,
# serialize), in unity batches (FACETRAIN_UNITY_BUILD). A PCH is only used by compilations with
# the same code model, so executables are compiled -fPIC like the libraries (PIC objects link
# into a PIE executable as usual).
function(facetrain_reuse_pch target)
  if("NN" IN_LIST ARGN)
    target_precompile_headers(${target} REUSE_FROM facetrain_pch_nn)
  else()
    target_precompile_headers(${target} REUSE_FROM facetrain_pch)
  endif()
  if(FACETRAIN_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON
                          UNITY_BUILD_BATCH_SIZE ${FACETRAIN_UNITY_BATCH})
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fPIC>)
    facetrain_stdcxx_first(${target})
  endif()
endfunction()

# facetrain_warnings(TARGET): the project's warning level.
function(facetrain_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
endfunction()

# facetrain_stdcxx_first(EXECUTABLE): make libstdc++ the first shared library the executable
# needs. The torch wheel's libtorch.so and libtorch_cpu.so export their own (statically linked)
# std::filesystem functions; listed first they interpose the system libstdc++'s and some of
# them jump through null pointers (std::filesystem::remove_all crashes). Symbols resolve in
# DT_NEEDED order, so libstdc++ first keeps every std:: function libstdc++'s own.
function(facetrain_stdcxx_first target)
  target_link_options(${target} PRIVATE -Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state)
endfunction()

# facetrain_plain_sources(SOURCES...): sources that use no LibTorch header are compiled alone,
# without a precompiled header (loading one costs more than such a file's whole compilation).
function(facetrain_plain_sources)
  set_source_files_properties(${ARGN} PROPERTIES
    SKIP_PRECOMPILE_HEADERS ON SKIP_UNITY_BUILD_INCLUSION ON)
endfunction()
