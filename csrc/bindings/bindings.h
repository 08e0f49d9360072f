// One bind_* function per component; module.cpp calls each once to build actormimic_fast._C.
#pragma once

#include <pybind11/pybind11.h>

namespace actormimic_fast::bindings {

void bind_env(pybind11::module_& m);
void bind_replay(pybind11::module_& m);
void bind_testing(pybind11::module_& m);

}  // namespace actormimic_fast::bindings
