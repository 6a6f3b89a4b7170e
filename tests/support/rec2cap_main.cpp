// rec2cap RECORDING CAPTURE [--frontend-only]
#include <cstdio>
#include <cstring>
#include <string>

#include "rec_to_capture.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: rec2cap RECORDING.rec CAPTURE [--frontend-only]\n");
    return 2;
  }
  bool with_backend = !(argc > 3 && std::strcmp(argv[3], "--frontend-only") == 0);
  std::string error;
  if (!pgwire::test::recording_to_capture(argv[1], argv[2], with_backend, &error)) {
    std::fprintf(stderr, "rec2cap: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
