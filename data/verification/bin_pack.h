#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/verification/verification_set.h"

namespace facetrain::data {

// Reads an insightface verification pack (lfw.bin, cfp_fp.bin, agedb_30.bin, …): a Python pickle
// of (bins, issame_list) where bins holds the 2N images' encoded bytes — as `bytes`/`str`
// objects, or as 1-D uint8 numpy arrays — and issame_list N flags — bools or ints, or a numpy
// bool/integer array. Pair i is images 2i and 2i + 1.
//
// No pickle code is executed: the reader interprets the opcodes of pickle protocols 0–5 that
// such packs use (no out-of-band buffers) and only these globals, which it rebuilds itself:
// numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype,
// numpy.core.multiarray.scalar, numpy.core.numeric._frombuffer (also under numpy._core), and
// _codecs.encode with latin-1 (Python 3's protocol-2 spelling of bytes). Anything else — another
// global (os.system, …), an unknown opcode, a truncated file, a structure other than the above,
// or 2N images for a number of flags other than N — is a DataError naming `source` (the file),
// the byte offset and what was found.
//
// JPEG images are kept byte for byte; others (PNG, BMP, TGA, GIF) are decoded and stored as JPEG
// at quality 95.
VerificationPairs parse_bin_pack(const std::vector<std::uint8_t>& bytes, const std::string& source);

// parse_bin_pack of the file at `path`.
VerificationPairs read_bin_pack(const std::filesystem::path& path);

}  // namespace facetrain::data
