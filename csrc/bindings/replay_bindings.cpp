// pybind11 bindings of the replay memory. Inputs of add() are numpy arrays read in place (the frames
// through their row stride, so a pool's obs[:, -1] view is never copied); batches are written into
// caller-owned torch tensors (pinnable). Every C++ call runs with the GIL released. The Python class
// actormimic_fast.ReplayMemory (replay.py) converts and validates arguments; the checks here make the
// raw _C class safe too.
#include <torch/extension.h>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>

#include "bindings/bindings.h"
#include "replay/replay_memory.h"

namespace py = pybind11;

namespace actormimic_fast::bindings {

namespace {

using replay::BatchOutput;
using replay::ReplayMemory;

template <typename T>
const T* vector_data(const py::array& a, const char* name, py::ssize_t n) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",), got ndim " +
                          std::to_string(a.ndim()) + (a.ndim() ? " and length " + std::to_string(a.shape(0)) : ""));
  if (n > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(T)))
    throw py::value_error(std::string(name) + " must be contiguous");
  return static_cast<const T*>(a.data());
}

void check_tensor(const torch::Tensor& t, const std::string& name, torch::ScalarType dtype,
                  std::vector<int64_t> shape) {
  if (t.scalar_type() != dtype)
    throw py::type_error(name + " must have dtype " + std::string(c10::toString(dtype)) + ", got " +
                         std::string(c10::toString(t.scalar_type())));
  if (!t.device().is_cpu()) throw py::value_error(name + " must be a CPU tensor, got " + c10::str(t.device()));
  if (t.sizes().vec() != shape)
    throw py::value_error(name + " must have shape " + c10::str(c10::IntArrayRef(shape)) + ", got " +
                          c10::str(t.sizes()));
  if (!t.is_contiguous()) throw py::value_error(name + " must be contiguous");
}

// Checks the nine output tensors for `rows` rows and returns raw pointers into them.
BatchOutput batch_output(const ReplayMemory& m, int64_t rows, torch::Tensor& obs, torch::Tensor& next_obs,
                         torch::Tensor& action, torch::Tensor& reward, torch::Tensor& discount, torch::Tensor& done,
                         torch::Tensor& game_id, torch::Tensor& env_id, torch::Tensor& index) {
  const std::vector<int64_t> frames{rows, m.config().stack, replay::kFrameSize, replay::kFrameSize};
  check_tensor(obs, "out.obs", torch::kUInt8, frames);
  check_tensor(next_obs, "out.next_obs", torch::kUInt8, frames);
  check_tensor(action, "out.action", torch::kInt64, {rows});
  check_tensor(reward, "out.reward", torch::kFloat32, {rows});
  check_tensor(discount, "out.discount", torch::kFloat32, {rows});
  check_tensor(done, "out.done", torch::kBool, {rows});
  check_tensor(game_id, "out.game_id", torch::kInt64, {rows});
  check_tensor(env_id, "out.env_id", torch::kInt64, {rows});
  check_tensor(index, "out.index", torch::kInt64, {rows});
  return {obs.data_ptr<uint8_t>(),   next_obs.data_ptr<uint8_t>(), action.data_ptr<int64_t>(),
          reward.data_ptr<float>(),  discount.data_ptr<float>(),   done.data_ptr<bool>(),
          game_id.data_ptr<int64_t>(), env_id.data_ptr<int64_t>(), index.data_ptr<int64_t>()};
}

float clip_value(std::optional<float> reward_clip) {
  return reward_clip ? *reward_clip : std::numeric_limits<float>::infinity();
}

}  // namespace

void bind_replay(py::module_& m) {
  py::class_<ReplayMemory>(m, "ReplayMemory")
      .def(py::init([](std::vector<int32_t> env_game_ids, std::vector<int64_t> capacity_per_game, int stack,
                       int n_step, float gamma, bool life_loss_terminal, int guard, int num_threads, uint64_t seed) {
             replay::ReplayConfig config;
             config.stack = stack;
             config.n_step = n_step;
             config.gamma = gamma;
             config.life_loss_terminal = life_loss_terminal;
             config.guard = guard;
             config.num_threads = num_threads;
             config.seed = seed;
             py::gil_scoped_release release;
             return std::make_unique<ReplayMemory>(std::move(env_game_ids), std::move(capacity_per_game), config);
           }),
           py::arg("env_game_ids"), py::arg("capacity_per_game"), py::arg("stack"), py::arg("n_step"),
           py::arg("gamma"), py::arg("life_loss_terminal"), py::arg("guard"), py::arg("num_threads"), py::arg("seed"))
      .def("add",
           [](ReplayMemory& self, const py::array& env_ids, const py::array& frames, const py::array& actions,
              const py::array& rewards, const py::array& terminated, const py::array& truncated,
              const py::array& life_loss, const py::array& episode_start) {
             if (env_ids.ndim() != 1) throw py::value_error("env_ids must be 1-D");
             const py::ssize_t n = env_ids.shape(0);
             if (!frames.dtype().is(py::dtype::of<uint8_t>()))
               throw py::type_error("frames must have dtype uint8, got " + std::string(py::str(frames.dtype())));
             if (frames.ndim() != 3 || frames.shape(0) != n || frames.shape(1) != replay::kFrameSize ||
                 frames.shape(2) != replay::kFrameSize)
               throw py::value_error("frames must have shape (" + std::to_string(n) + ", 84, 84)");
             if (n > 0 && (frames.strides(2) != 1 || frames.strides(1) != replay::kFrameSize))
               throw py::value_error("each frame must be 84 contiguous rows of 84 bytes (strides (*, 84, 1))");
             replay::StepInput step;
             step.count = n;
             step.env_ids = vector_data<int32_t>(env_ids, "env_ids", n);
             step.frames = static_cast<const uint8_t*>(frames.data());
             step.frame_row_stride = frames.strides(0);
             step.actions = vector_data<int64_t>(actions, "actions", n);
             step.rewards = vector_data<float>(rewards, "rewards", n);
             step.terminated = vector_data<bool>(terminated, "terminated", n);
             step.truncated = vector_data<bool>(truncated, "truncated", n);
             step.life_loss = vector_data<bool>(life_loss, "life_loss", n);
             step.episode_start = vector_data<bool>(episode_start, "episode_start", n);
             py::gil_scoped_release release;
             self.add(step);
           },
           py::arg("env_ids"), py::arg("frames"), py::arg("actions"), py::arg("rewards"), py::arg("terminated"),
           py::arg("truncated"), py::arg("life_loss"), py::arg("episode_start"))
      .def("sample_into",
           [](ReplayMemory& self, const std::vector<int32_t>& games, int64_t per_game, int64_t batch_size,
              std::optional<uint64_t> seed, std::optional<float> reward_clip, torch::Tensor obs, torch::Tensor next_obs,
              torch::Tensor action, torch::Tensor reward, torch::Tensor discount, torch::Tensor done,
              torch::Tensor game_id, torch::Tensor env_id, torch::Tensor index) {
             const int64_t rows = per_game > 0 ? per_game * static_cast<int64_t>(games.size()) : batch_size;
             const BatchOutput out =
                 batch_output(self, rows, obs, next_obs, action, reward, discount, done, game_id, env_id, index);
             const uint64_t s = seed ? *seed : self.next_seed();
             py::gil_scoped_release release;
             self.sample(games, per_game, batch_size, s, clip_value(reward_clip), out);
           },
           py::arg("games"), py::arg("per_game"), py::arg("batch_size"), py::arg("seed"), py::arg("reward_clip"),
           py::arg("obs"), py::arg("next_obs"), py::arg("action"), py::arg("reward"), py::arg("discount"),
           py::arg("done"), py::arg("game_id"), py::arg("env_id"), py::arg("index"))
      .def("gather_into",
           [](ReplayMemory& self, const py::array& env_ids, const py::array& indices, std::optional<float> reward_clip,
              torch::Tensor obs, torch::Tensor next_obs, torch::Tensor action, torch::Tensor reward,
              torch::Tensor discount, torch::Tensor done, torch::Tensor game_id, torch::Tensor env_id,
              torch::Tensor index) {
             if (env_ids.ndim() != 1) throw py::value_error("env_ids must be 1-D");
             const py::ssize_t n = env_ids.shape(0);
             const int32_t* e = vector_data<int32_t>(env_ids, "env_ids", n);
             const int64_t* i = vector_data<int64_t>(indices, "indices", n);
             const BatchOutput out =
                 batch_output(self, n, obs, next_obs, action, reward, discount, done, game_id, env_id, index);
             py::gil_scoped_release release;
             self.gather(e, i, n, clip_value(reward_clip), out);
           },
           py::arg("env_ids"), py::arg("indices"), py::arg("reward_clip"), py::arg("obs"), py::arg("next_obs"),
           py::arg("action"), py::arg("reward"), py::arg("discount"), py::arg("done"), py::arg("game_id"),
           py::arg("env_id"), py::arg("index"))
      .def("valid_indices",
           [](const ReplayMemory& self, int32_t game) {
             std::vector<int32_t> envs;
             std::vector<int64_t> indices;
             {
               py::gil_scoped_release release;
               self.valid_indices(game, &envs, &indices);
             }
             return py::make_tuple(py::array_t<int32_t>(envs.size(), envs.data()),
                                   py::array_t<int64_t>(indices.size(), indices.data()));
           },
           py::arg("game"))
      .def("num_transitions", &ReplayMemory::num_transitions, py::arg("game"))
      .def("num_records", &ReplayMemory::num_records, py::arg("game"))
      .def("env_written", &ReplayMemory::env_written, py::arg("env"))
      .def("env_capacity",
           [](const ReplayMemory& self, int32_t env) {
             if (env < 0 || env >= self.num_envs())
               throw std::out_of_range("env " + std::to_string(env) + " is out of range [0, " +
                                       std::to_string(self.num_envs()) + ")");
             return self.env_capacity(env);
           },
           py::arg("env"))
      .def("next_seed", &ReplayMemory::next_seed)
      .def("export_state",
           [](ReplayMemory& self) {
             std::vector<int64_t> written;
             torch::Tensor frames, actions, rewards, flags;
             {
               py::gil_scoped_release release;
               self.export_records(&written, [&](int64_t total) {
                 frames = torch::empty({total, replay::kFrameSize, replay::kFrameSize}, torch::kUInt8);
                 actions = torch::empty({total}, torch::kInt32);
                 rewards = torch::empty({total}, torch::kFloat32);
                 flags = torch::empty({total}, torch::kUInt8);
                 return replay::RecordArrays{frames.data_ptr<uint8_t>(), actions.data_ptr<int32_t>(),
                                             rewards.data_ptr<float>(), flags.data_ptr<uint8_t>()};
               });
             }
             py::dict d;
             d["env_written"] = torch::tensor(written, torch::kInt64);
             d["frames"] = frames;
             d["actions"] = actions;
             d["rewards"] = rewards;
             d["flags"] = flags;
             d["seed_calls"] = self.seed_calls();
             return d;
           })
      .def("import_state",
           [](ReplayMemory& self, std::vector<int64_t> env_written, torch::Tensor frames, torch::Tensor actions,
              torch::Tensor rewards, torch::Tensor flags, uint64_t seed_calls) {
             const int64_t total = self.records_for(env_written);
             check_tensor(frames, "state['frames']", torch::kUInt8, {total, replay::kFrameSize, replay::kFrameSize});
             check_tensor(actions, "state['actions']", torch::kInt32, {total});
             check_tensor(rewards, "state['rewards']", torch::kFloat32, {total});
             check_tensor(flags, "state['flags']", torch::kUInt8, {total});
             const replay::ConstRecordArrays records{frames.data_ptr<uint8_t>(), actions.data_ptr<int32_t>(),
                                                     rewards.data_ptr<float>(), flags.data_ptr<uint8_t>()};
             py::gil_scoped_release release;
             self.restore(env_written, records, seed_calls);
           },
           py::arg("env_written"), py::arg("frames"), py::arg("actions"), py::arg("rewards"), py::arg("flags"),
           py::arg("seed_calls"))
      .def("_set_unsafe_skip_overwrite_check", &ReplayMemory::set_unsafe_skip_overwrite_check, py::arg("skip"))
      .def_property_readonly("num_envs", &ReplayMemory::num_envs)
      .def_property_readonly("num_games", &ReplayMemory::num_games)
      .def_property_readonly("num_threads", &ReplayMemory::num_threads)
      .def_property_readonly("nbytes", &ReplayMemory::nbytes)
      .def_property_readonly("overwrite_redraws", &ReplayMemory::overwrite_redraws)
      .def_property_readonly("seed_calls", &ReplayMemory::seed_calls)
      .def_property_readonly("env_game_ids", &ReplayMemory::env_game_ids)
      .def_property_readonly("capacity_per_game", &ReplayMemory::capacity_per_game)
      .def_property_readonly("stack", [](const ReplayMemory& self) { return self.config().stack; })
      .def_property_readonly("n_step", [](const ReplayMemory& self) { return self.config().n_step; })
      .def_property_readonly("gamma", [](const ReplayMemory& self) { return self.config().gamma; })
      .def_property_readonly("life_loss_terminal",
                             [](const ReplayMemory& self) { return self.config().life_loss_terminal; })
      .def_property_readonly("guard", [](const ReplayMemory& self) { return self.config().guard; });
}

}  // namespace actormimic_fast::bindings
