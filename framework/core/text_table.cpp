#include "framework/core/text_table.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>

#include "framework/core/error.h"

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
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open the file", file));
  TextRow r;
  r.file = &file;
  std::int64_t rows = 0;
  std::string text;
  for (r.line = 1; std::getline(in, text); ++r.line) {
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
