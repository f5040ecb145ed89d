# The portable bundle's glibc compatibility library (packaging/glibc_compat.c, scripts/bundle.sh): built with
# every configuration so that scripts/bundle.sh packages an existing build and the tests can check it.
add_library(razor_glibc_compat SHARED ${CMAKE_CURRENT_LIST_DIR}/glibc_compat.c)
set_target_properties(razor_glibc_compat PROPERTIES OUTPUT_NAME razor-glibc-compat C_VISIBILITY_PRESET hidden
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_link_libraries(razor_glibc_compat PRIVATE ${CMAKE_DL_LIBS})
