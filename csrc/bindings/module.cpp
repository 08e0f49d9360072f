// actormimic_fast._C: pybind11 classes of the engine and the replay, and the test-only helpers of
// csrc/testing/. The fused ops register themselves with the dispatcher through TORCH_LIBRARY when this
// module is loaded.
#include <torch/extension.h>

#include "bindings/bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "actormimic_fast native core";
  actormimic_fast::bindings::bind_env(m);
  actormimic_fast::bindings::bind_replay(m);
  actormimic_fast::bindings::bind_testing(m);
}
