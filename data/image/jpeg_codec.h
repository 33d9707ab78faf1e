#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace facetrain::data {

// JPEG decoding and encoding with libjpeg-turbo (TurboJPEG API). One codec per thread: the
// handles are not shared. Every failing call throws DataError naming `source` (a file, or
// "shard-00003.h5: sample 17") and libjpeg-turbo's own message; the codec stays usable for the
// next image (a corrupt image does not spoil the ones after it).
class JpegCodec {
 public:
  JpegCodec();
  ~JpegCodec();
  JpegCodec(const JpegCodec&) = delete;
  JpegCodec& operator=(const JpegCodec&) = delete;

  // Width and height from the header alone.
  std::pair<int, int> size(const std::uint8_t* bytes, std::size_t length,
                           const std::string& source);
  // Decodes into `out` (uint8, [height, width, 3] RGB, contiguous), which is resized when its
  // shape differs. Any libjpeg warning (a truncated file, corrupt data) is an error here.
  void decode(const std::uint8_t* bytes, std::size_t length, at::Tensor& out,
              const std::string& source);
  at::Tensor decode(const std::vector<std::uint8_t>& bytes, const std::string& source);
  // Decodes an image that must be `width`×`height` into `out` (width·height·3 bytes, RGB);
  // DataError naming `source` and both sizes when it is another size.
  void decode_into(const std::uint8_t* bytes, std::size_t length, std::uint8_t* out, int width,
                   int height, const std::string& source);
  // Encodes uint8 [height, width, 3] RGB at `quality` (1..100) with 4:2:0 chroma subsampling.
  std::vector<std::uint8_t> encode(const at::Tensor& rgb, int quality);

 private:
  // Throws DataError for a failed decoder call after giving the codec a fresh decoder: TurboJPEG
  // 2.1 leaves a handle whose header read failed mid-stream in that state, and its next header
  // reads fail with the same error.
  [[noreturn]] void decoding_failed(const char* call, const std::string& source);

  void* decoder_ = nullptr;
  void* encoder_ = nullptr;
};

}  // namespace facetrain::data
