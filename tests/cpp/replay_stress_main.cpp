// Standalone driver of the replay stress test, for sanitizer builds without Python or torch:
//   g++ -std=c++20 -O1 -g -fsanitize=thread -Icsrc csrc/replay/*.cpp csrc/testing/replay_stress.cpp \
//       tests/cpp/replay_stress_main.cpp -o build/replay_stress_tsan
//   build/replay_stress_tsan [min_samples] [--unsafe]
// Exits 1 when a sampled row was torn, 0 otherwise; ThreadSanitizer exits 66 on a data race.
// --unsafe disables the seqlock check and exits 1 unless the checker does see torn rows.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "testing/replay_stress.h"

int main(int argc, char** argv) {
  using actormimic_fast::testing::StressSettings;
  StressSettings settings;
  settings.min_samples = argc > 1 ? std::atoll(argv[1]) : 200000;
  settings.max_seconds = 300.0;
  settings.skip_overwrite_check = argc > 2 && std::strcmp(argv[2], "--unsafe") == 0;
  int failures = 0;
  for (int guard : {0, 8}) {
    for (int sampler_threads : {1, 2}) {
      settings.guard = guard;
      settings.sampler_threads = sampler_threads;
      // Two threads only split batches of 64 rows or more; such batches need larger rings.
      settings.batch_size = sampler_threads > 1 ? 128 : 16;
      settings.capacity_per_game = sampler_threads > 1 ? 512 : 128;
      const auto r = actormimic_fast::testing::replay_stress_test(settings);
      std::printf("guard=%d sampler_threads=%d: %lld samples checked, %lld torn, %lld records written, "
                  "%lld redraws, %.1f s %s\n",
                  guard, sampler_threads, static_cast<long long>(r.samples), static_cast<long long>(r.torn),
                  static_cast<long long>(r.records_written), static_cast<long long>(r.overwrite_redraws), r.seconds,
                  r.first_error.c_str());
      if (settings.skip_overwrite_check)
        failures += guard == 0 && r.torn == 0;  // without the check a lapping writer must be caught
      else
        failures += r.torn != 0 || r.samples < settings.min_samples;
    }
  }
  return failures ? 1 : 0;
}
