// pybind11 bindings of the multi-game pool. Output buffers are exposed as numpy arrays that view the
// pool's memory and keep the pool alive; blocking calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "env/multi_game_env_pool.h"

namespace py = pybind11;

namespace actormimic_fast::bindings {

namespace {

using env::MultiGameEnvPool;
using env::PoolOutputs;

template <typename T>
py::array view(T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  return py::array_t<T>(shape, data, owner);
}

py::dict outputs_dict(PoolOutputs& out, int stack, py::handle owner) {
  const py::ssize_t n = out.rows;
  py::dict d;
  d["obs"] = view(out.obs.data(), {n, stack, env::kFrameSize, env::kFrameSize}, owner);
  d["reward"] = view(out.reward.data(), {n}, owner);
  d["terminated"] = view(out.terminated.get(), {n}, owner);
  d["truncated"] = view(out.truncated.get(), {n}, owner);
  d["life_loss"] = view(out.life_loss.get(), {n}, owner);
  d["episode_start"] = view(out.episode_start.get(), {n}, owner);
  d["episode_return"] = view(out.episode_return.data(), {n}, owner);
  d["episode_length"] = view(out.episode_length.data(), {n}, owner);
  d["lives"] = view(out.lives.data(), {n}, owner);
  d["env_id"] = view(out.env_id.data(), {n}, owner);
  d["game_id"] = view(out.game_id.data(), {n}, owner);
  return d;
}

}  // namespace

void bind_env(py::module_& m) {
  py::class_<env::EnvConfig>(m, "EnvConfig")
      .def(py::init<>())
      .def_readwrite("frame_skip", &env::EnvConfig::frame_skip)
      .def_readwrite("stack", &env::EnvConfig::stack)
      .def_readwrite("noop_max", &env::EnvConfig::noop_max)
      .def_readwrite("fire_reset", &env::EnvConfig::fire_reset)
      .def_readwrite("repeat_action_probability", &env::EnvConfig::repeat_action_probability)
      .def_readwrite("max_episode_frames", &env::EnvConfig::max_episode_frames);

  py::class_<MultiGameEnvPool>(m, "MultiGameEnvPool")
      .def(py::init([](const std::vector<std::pair<std::string, std::string>>& games, int envs_per_game,
                       int num_threads, int batch_size, uint64_t seed, const env::EnvConfig& config,
                       bool invalid_action_to_noop) {
             std::vector<MultiGameEnvPool::Game> specs;
             for (const auto& [name, rom] : games) specs.push_back({name, rom});
             py::gil_scoped_release release;
             return std::make_unique<MultiGameEnvPool>(specs, envs_per_game, num_threads, batch_size, seed, config,
                                                       invalid_action_to_noop);
           }),
           py::arg("games"), py::arg("envs_per_game"), py::arg("num_threads"), py::arg("batch_size"),
           py::arg("seed"), py::arg("config"), py::arg("invalid_action_to_noop"))
      .def("reset", &MultiGameEnvPool::reset, py::call_guard<py::gil_scoped_release>())
      .def("async_reset", &MultiGameEnvPool::async_reset, py::call_guard<py::gil_scoped_release>())
      .def("step",
           [](MultiGameEnvPool& pool, py::array_t<int64_t, py::array::c_style> actions) {
             if (actions.ndim() != 1 || actions.shape(0) != pool.num_envs())
               throw std::invalid_argument("actions must have shape (" + std::to_string(pool.num_envs()) + ",)");
             const int64_t* data = actions.data();
             py::gil_scoped_release release;
             pool.step(data);
           })
      .def("send",
           [](MultiGameEnvPool& pool, py::array_t<int64_t, py::array::c_style> actions,
              py::array_t<int32_t, py::array::c_style> env_ids) {
             if (actions.ndim() != 1 || env_ids.ndim() != 1 || actions.shape(0) != env_ids.shape(0))
               throw std::invalid_argument("actions and env_ids must be 1-D of equal length");
             const int64_t* a = actions.data();
             const int32_t* ids = env_ids.data();
             const int count = static_cast<int>(actions.shape(0));
             py::gil_scoped_release release;
             pool.send(a, ids, count);
           })
      .def("recv", &MultiGameEnvPool::recv, py::call_guard<py::gil_scoped_release>())
      .def("capture_screens",
           [](MultiGameEnvPool& pool, py::array_t<uint8_t, py::array::c_style> flags) {
             if (flags.ndim() != 1 || flags.shape(0) != pool.num_envs())
               throw std::invalid_argument("flags must have shape (" + std::to_string(pool.num_envs()) + ",)");
             const uint8_t* data = flags.data();
             py::gil_scoped_release release;
             pool.capture_screens(data);
           })
      .def_property_readonly("capturing",
                             [](MultiGameEnvPool& pool) {
                               auto& flags = pool.capturing();
                               py::array_t<bool> out(static_cast<py::ssize_t>(flags.size()));
                               std::copy(flags.begin(), flags.end(), out.mutable_data());
                               return out;
                             })
      .def("screens",
           [](py::object self) {
             auto& pool = self.cast<MultiGameEnvPool&>();
             auto& screens = pool.screens();
             if (screens.empty())
               throw std::runtime_error("screens: no env has captured its screen yet; call capture_screens() first");
             return view(screens.data(), {pool.num_envs(), env::kScreenHeight, env::kScreenWidth, 3}, self);
           })
      .def("close", &MultiGameEnvPool::close, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("closed", &MultiGameEnvPool::closed)
      .def_property_readonly("num_envs", &MultiGameEnvPool::num_envs)
      .def_property_readonly("num_games", &MultiGameEnvPool::num_games)
      .def_property_readonly("num_threads", &MultiGameEnvPool::num_threads)
      .def_property_readonly("batch_size", &MultiGameEnvPool::batch_size)
      .def_property_readonly("action_masks",
                             [](py::object self) {
                               auto& pool = self.cast<MultiGameEnvPool&>();
                               auto& masks = pool.action_masks();
                               py::array_t<bool> out({pool.num_games(), env::kFullActionCount});
                               std::copy(masks.begin(), masks.end(), out.mutable_data());
                               return out;
                             })
      .def_property_readonly("game_ids",
                             [](py::object self) {
                               auto& ids = self.cast<MultiGameEnvPool&>().game_ids();
                               return py::array_t<int32_t>(ids.size(), ids.data());
                             })
      .def("env_outputs",
           [](py::object self) {
             auto& pool = self.cast<MultiGameEnvPool&>();
             return outputs_dict(pool.env_outputs(), pool.stack(), self);
           })
      .def("batch_outputs", [](py::object self) {
        auto& pool = self.cast<MultiGameEnvPool&>();
        return outputs_dict(pool.batch_outputs(), pool.stack(), self);
      });

  m.def(
      "area_resize",
      [](py::array_t<uint8_t, py::array::c_style> src, int height, int width) {
        if (src.ndim() != 2) throw std::invalid_argument("src must be a 2-D uint8 array");
        const env::AreaResizer resizer(static_cast<int>(src.shape(0)), static_cast<int>(src.shape(1)), height, width);
        py::array_t<uint8_t> dst({height, width});
        resizer.resize(src.data(), dst.mutable_data());
        return dst;
      },
      py::arg("src"), py::arg("height"), py::arg("width"),
      "OpenCV-exact INTER_AREA downscale of one uint8 channel (the pool's resize, exposed for tests).");

  m.def("simd_enabled", &env::simd_enabled, "Whether the frame ops use SIMD (AVX2 or AVX-512) kernels.");
  m.def("set_simd_enabled", &env::set_simd_enabled, py::arg("enabled"),
        "Choose the best SIMD or the portable frame ops (identical results; for tests and benchmarks).");
  static const char* const kLevels[] = {"portable", "avx2", "avx512"};
  m.def("simd_levels", [] {
        std::vector<std::string> levels;
        for (int l = 0; l <= static_cast<int>(env::best_simd_level()); ++l) levels.emplace_back(kLevels[l]);
        return levels;
      },
      "The frame-op kernel sets this CPU supports, slowest first.");
  m.def("simd_level", [] { return std::string(kLevels[static_cast<int>(env::simd_level())]); },
        "The frame-op kernel set in use: 'portable', 'avx2' or 'avx512'.");
  m.def("set_simd_level", [](const std::string& name) {
        for (int l = 0; l < 3; ++l)
          if (name == kLevels[l]) return env::set_simd_level(static_cast<env::SimdLevel>(l));
        throw std::invalid_argument("level must be 'portable', 'avx2' or 'avx512', got '" + name + "'");
      },
      py::arg("level"), "Choose the frame-op kernel set (identical results; for tests and benchmarks).");
}

}  // namespace actormimic_fast::bindings
