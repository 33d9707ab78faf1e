#include "framework/core/text_table.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <sstream>

#include "framework/core/error.h"
#include "framework/core/input_file.h"

namespace facetrain {

std::string TextRow::where() const {
  return fmt::format("{}:{}", file ? *file : "?", line);
}

void TextRow::expect_fields(std::size_t least, std::size_t most, std::string_view layout) const {
  if (fields.size() < least || fields.size() > most) {
    throw DataError(fmt::format("{}: {} fields, expected {}", where(), fields.size(), layout));
  }
}

std::int64_t TextRow::integer(std::size_t k, std::string_view what) const {
  const std::string_view f = k < fields.size() ? fields[k] : std::string_view();
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  if (f.empty() || ec != std::errc() || end != f.data() + f.size()) {
    throw DataError(
        fmt::format("{}: field {} is '{}': expected {} (an integer)", where(), k + 1, f, what));
  }
  return v;
}

double TextRow::number(std::size_t k, std::string_view what) const {
  const std::string_view f = k < fields.size() ? fields[k] : std::string_view();
  double v = 0;
  const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  if (f.empty() || ec != std::errc() || end != f.data() + f.size() || !std::isfinite(v)) {
    throw DataError(fmt::format("{}: field {} is '{}': expected {} (a finite number)", where(),
                                k + 1, f, what));
  }
  return v;
}

std::int64_t read_text_table(const std::string& file,
                             const std::function<void(const TextRow&)>& row,
                             std::int64_t skip_lines) {
  // A table (IJB-C's largest is some 40 MiB) is read whole; 2 GiB is no metadata table.
  std::istringstream in(InputFile::open_or_throw<DataError>(file).read_all<DataError>(
      std::int64_t{2} << 30, "a metadata table"));
  TextRow r;
  r.file = &file;
  std::int64_t rows = 0;
  std::string text;
  for (r.line = 1; std::getline(in, text); ++r.line) {
    // A UTF-8 byte-order mark (as Windows editors write) is no part of the first field.
    if (r.line == 1 && text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
    if (r.line <= skip_lines) continue;
    r.fields.clear();
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
      while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == ',' || text[i] == '\r')) ++i;
      const std::size_t start = i;
      while (i < n && text[i] != ' ' && text[i] != '\t' && text[i] != ',' && text[i] != '\r') ++i;
      if (i > start) r.fields.emplace_back(text.data() + start, i - start);
    }
    if (r.fields.empty() || r.fields[0][0] == '#') continue;
    row(r);
    ++rows;
  }
  if (in.bad()) throw DataError(fmt::format("{}: read error after line {}", file, r.line));
  return rows;
}

}  // namespace facetrain
