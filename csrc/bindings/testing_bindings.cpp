// pybind11 bindings of the test-only native code in csrc/testing/: the replay stress test (used by
// tests/test_replay_concurrency.py) and the raw emulator ceiling (used by benchmarks/bench_env.py). Both
// release the GIL for their whole run.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "testing/raw_emulator_benchmark.h"
#include "testing/replay_stress.h"

namespace py = pybind11;

namespace actormimic_fast::bindings {

void bind_testing(py::module_& m) {
  m.def(
      "replay_stress_test",
      [](int num_envs, int num_games, int64_t capacity_per_game, int guard, int stack, int n_step,
         bool life_loss_terminal, int num_samplers, int sampler_threads, int64_t batch_size, int64_t min_samples,
         double max_seconds, bool skip_overwrite_check, uint64_t seed) {
        testing::StressSettings s;
        s.num_envs = num_envs;
        s.num_games = num_games;
        s.capacity_per_game = capacity_per_game;
        s.guard = guard;
        s.stack = stack;
        s.n_step = n_step;
        s.life_loss_terminal = life_loss_terminal;
        s.num_samplers = num_samplers;
        s.sampler_threads = sampler_threads;
        s.batch_size = batch_size;
        s.min_samples = min_samples;
        s.max_seconds = max_seconds;
        s.skip_overwrite_check = skip_overwrite_check;
        s.seed = seed;
        testing::StressResult r;
        {
          py::gil_scoped_release release;
          r = testing::replay_stress_test(s);
        }
        py::dict d;
        d["samples"] = r.samples;
        d["torn"] = r.torn;
        d["records_written"] = r.records_written;
        d["overwrite_redraws"] = r.overwrite_redraws;
        d["seconds"] = r.seconds;
        d["first_error"] = r.first_error;
        return d;
      },
      py::arg("num_envs") = 4, py::arg("num_games") = 2, py::arg("capacity_per_game") = 128, py::arg("guard") = 0,
      py::arg("stack") = 4, py::arg("n_step") = 3, py::arg("life_loss_terminal") = false, py::arg("num_samplers") = 2,
      py::arg("sampler_threads") = 1, py::arg("batch_size") = 16, py::arg("min_samples") = 1000000,
      py::arg("max_seconds") = 60.0, py::arg("skip_overwrite_check") = false, py::arg("seed") = 0,
      "Runs a writer and checking samplers against one ReplayMemory (csrc/testing/replay_stress.h).");

  m.def("raw_emulator_frames_per_second", &testing::raw_emulator_frames_per_second, py::arg("rom_path"),
        py::arg("num_threads"), py::arg("frames_per_thread"), py::arg("frame_skip") = 4, py::arg("seed") = 0,
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace actormimic_fast::bindings
