// Text tables as the landmarks and IJB meta readers parse them: a landmarks file, and the same
// bytes as an IJB benchmark's meta files (images need not exist: the reader must say so).
#include "data/image/alignment.h"
#include "data/verification/ijb_protocol.h"
#include "framework/core/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = facetrain::fuzz::scratch();
  facetrain::fuzz::write_file(dir / "landmarks.txt", data, size);
  try {
    facetrain::data::read_landmarks((dir / "landmarks.txt").string());
  } catch (const facetrain::Error&) {
  }
  std::filesystem::create_directories(dir / "ijb" / "loose_crop");
  std::filesystem::create_directories(dir / "ijb" / "meta");
  for (const char* f :
       {"ijbc_name_5pts_score.txt", "ijbc_face_tid_mid.txt", "ijbc_template_pair_label.txt"}) {
    facetrain::fuzz::write_file(dir / "ijb" / "meta" / f, data, size);
  }
  try {
    facetrain::data::read_ijb_protocol(dir / "ijb", "IJBC");
  } catch (const facetrain::Error&) {
  }
  return 0;
}
