# Helpers shared by the module folders.

# facetrain_reuse_pch(TARGET): compile TARGET with the shared <torch/torch.h> precompiled header.
# A PCH is only used by compilations with the same code model, so executables are compiled
# -fPIC like the libraries (PIC objects link into a PIE executable as usual).
function(facetrain_reuse_pch target)
  target_precompile_headers(${target} REUSE_FROM facetrain_pch)
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
