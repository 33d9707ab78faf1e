#include "data/image/jpeg_codec.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <turbojpeg.h>

#include "data/image/image_limits.h"
#include "framework/core/error.h"

namespace facetrain::data {
namespace {

// A truncated JPEG is only a warning to libjpeg (it pads the image with grey): stopping on
// warnings makes it the error it is for training data. A progressive JPEG of thousands of tiny
// scans (a CPU bomb) is refused after 500.
constexpr int kDecodeFlags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;

[[noreturn]] void fail(void* handle, const char* call, const std::string& source) {
  throw DataError(fmt::format("{}: {} failed: {}", source, call,
                              tjGetErrorStr2(static_cast<tjhandle>(handle))));
}

}  // namespace

JpegCodec::JpegCodec() {
  decoder_ = tjInitDecompress();
  encoder_ = tjInitCompress();
  if (decoder_ == nullptr || encoder_ == nullptr) {
    throw DataError(
        fmt::format("libjpeg-turbo: cannot create a codec: {}", tjGetErrorStr2(nullptr)));
  }
}

void JpegCodec::decoding_failed(const char* call, const std::string& source) {
  const std::string message = tjGetErrorStr2(static_cast<tjhandle>(decoder_));
  tjDestroy(static_cast<tjhandle>(decoder_));
  decoder_ = tjInitDecompress();
  if (decoder_ == nullptr) {
    throw DataError(
        fmt::format("libjpeg-turbo: cannot create a decoder: {}", tjGetErrorStr2(nullptr)));
  }
  throw DataError(fmt::format("{}: {} failed: {}", source, call, message));
}

JpegCodec::~JpegCodec() {
  if (decoder_ != nullptr) tjDestroy(static_cast<tjhandle>(decoder_));
  if (encoder_ != nullptr) tjDestroy(static_cast<tjhandle>(encoder_));
}

std::pair<int, int> JpegCodec::size(const std::uint8_t* bytes, std::size_t length,
                                    const std::string& source) {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(static_cast<tjhandle>(decoder_), bytes,
                          static_cast<unsigned long>(length), &width, &height, &subsampling,
                          &colorspace) != 0) {
    decoding_failed("tjDecompressHeader3", source);
  }
  check_image_size(width, height, source);
  return {width, height};
}

void JpegCodec::decode(const std::uint8_t* bytes, std::size_t length, at::Tensor& out,
                       const std::string& source) {
  const auto [width, height] = size(bytes, length, source);
  if (!out.defined() || out.scalar_type() != at::kByte || out.dim() != 3 || out.size(0) != height ||
      out.size(1) != width || out.size(2) != 3 || !out.is_contiguous()) {
    out = at::empty({height, width, 3}, at::kByte);
  }
  if (tjDecompress2(static_cast<tjhandle>(decoder_), bytes, static_cast<unsigned long>(length),
                    out.data_ptr<std::uint8_t>(), width, 0, height, TJPF_RGB, kDecodeFlags) != 0) {
    decoding_failed("tjDecompress2", source);
  }
}

void JpegCodec::decode_into(const std::uint8_t* bytes, std::size_t length, std::uint8_t* out,
                            int width, int height, const std::string& source) {
  const auto [w, h] = size(bytes, length, source);
  if (w != width || h != height) {
    throw DataError(fmt::format("{}: image is {}x{}, expected {}x{}", source, w, h, width, height));
  }
  if (tjDecompress2(static_cast<tjhandle>(decoder_), bytes, static_cast<unsigned long>(length), out,
                    width, 0, height, TJPF_RGB, kDecodeFlags) != 0) {
    decoding_failed("tjDecompress2", source);
  }
}

at::Tensor JpegCodec::decode(const std::vector<std::uint8_t>& bytes, const std::string& source) {
  at::Tensor out;
  decode(bytes.data(), bytes.size(), out, source);
  return out;
}

std::vector<std::uint8_t> JpegCodec::encode(const at::Tensor& rgb, int quality) {
  if (rgb.scalar_type() != at::kByte || rgb.dim() != 3 || rgb.size(2) != 3) {
    throw DataError("JPEG encode: expected uint8 [height, width, 3] RGB");
  }
  const at::Tensor image = rgb.contiguous();
  unsigned char* buffer = nullptr;
  unsigned long length = 0;
  if (tjCompress2(static_cast<tjhandle>(encoder_), image.data_ptr<std::uint8_t>(),
                  static_cast<int>(image.size(1)), 0, static_cast<int>(image.size(0)), TJPF_RGB,
                  &buffer, &length, TJSAMP_420, quality, 0) != 0) {
    tjFree(buffer);
    fail(encoder_, "tjCompress2", "JPEG encode");
  }
  std::vector<std::uint8_t> out(buffer, buffer + length);
  tjFree(buffer);
  return out;
}

}  // namespace facetrain::data
