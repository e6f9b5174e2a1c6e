# Writes a C++ source that holds every profiles/*.profile file as a string.
# Invoked as: cmake -DOUT=<file.cc> -DPROFILE_DIR=<dir> -P embed_profiles.cmake
set(body "// Generated from sandbox/profiles/*.profile by embed_profiles.cmake. Do not edit.\n")
string(APPEND body "#include \"sandbox/builtin_profiles.h\"\n\nnamespace sandbox::detail {\n")
string(APPEND body "const BuiltinProfile kBuiltinProfiles[] = {\n")
file(GLOB PROFILES ${PROFILE_DIR}/*.profile)
list(SORT PROFILES)
foreach(file IN LISTS PROFILES)
  get_filename_component(name ${file} NAME_WE)
  file(READ ${file} text)
  # A raw string delimiter that cannot occur in a profile.
  string(APPEND body "    {\"${name}\", R\"pl_profile(${text})pl_profile\"},\n")
endforeach()
string(APPEND body "};\nconst std::size_t kBuiltinProfileCount = sizeof(kBuiltinProfiles) / sizeof(kBuiltinProfiles[0]);\n")
string(APPEND body "}  // namespace sandbox::detail\n")
file(WRITE ${OUT} "${body}")
