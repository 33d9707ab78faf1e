#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace facetrain {

// A line of a whitespace/comma-separated text table, as read_text_table hands it over: its
// 1-based number and its fields. `where()` is "FILE:LINE", for messages.
struct TextRow {
  const std::string* file = nullptr;
  std::int64_t line = 0;
  std::vector<std::string_view> fields;

  std::string where() const;
  // Field k (0-based) as an integer / a finite number; anything else is a DataError naming the
  // file, the line, the field (1-based) and `what` it should be.
  std::int64_t integer(std::size_t k, std::string_view what) const;
  double number(std::size_t k, std::string_view what) const;
  // A DataError unless the row has between `least` and `most` fields; `layout` describes them.
  void expect_fields(std::size_t least, std::size_t most, std::string_view layout) const;
};

// Calls `row` for each line of `file` holding a field: fields are separated by spaces, tabs or
// commas; a UTF-8 byte-order mark at the start and a trailing CR are ignored; lines whose first
// field starts with '#' are skipped, and so
// are the first `skip_lines` lines (a header). A file that cannot be opened is a DataError.
// Returns the rows handed over.
std::int64_t read_text_table(const std::string& file,
                             const std::function<void(const TextRow&)>& row,
                             std::int64_t skip_lines = 0);

}  // namespace facetrain
